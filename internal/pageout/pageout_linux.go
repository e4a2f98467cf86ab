package pageout

import (
	"fmt"
	"os"
	"syscall"

	"github.com/prometheus/procfs"
)

// madvDontneed is MADV_DONTNEED: the process's page table entries of the
// range go; a later touch maps the page again from the page cache. The
// mappings it is used on are read-only and never written, so they hold no
// private copy that could be lost. (MADV_PAGEOUT would also reclaim the
// pages, but the kernel only lets the file's owner or a writer do so, and
// the image runs the binary as a non-root user.)
const madvDontneed = 4

// Run drops the running executable's read-only mappings from the process's
// page tables, then asks the kernel to evict the file's pages that no
// process maps any more from the page cache (fadvise; the pages in use are
// mapped again by then and stay). It returns how many bytes the mappings
// span.
func Run() (int64, error) {
	self, err := procfs.Self()
	if err != nil {
		return 0, err
	}
	exe, err := self.Executable()
	if err != nil {
		return 0, err
	}
	maps, err := self.ProcMaps()
	if err != nil {
		return 0, err
	}
	rs := ReadOnlyMappings(maps, exe)
	if len(rs) == 0 {
		return 0, fmt.Errorf("no read-only mapping of %s", exe)
	}
	for _, r := range rs {
		if _, _, e := syscall.Syscall(syscall.SYS_MADVISE, r.Start, r.End-r.Start, madvDontneed); e != 0 {
			return 0, fmt.Errorf("madvise(MADV_DONTNEED): %w", e)
		}
	}
	f, err := os.Open("/proc/self/exe")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	if err := evict(f); err != nil {
		return 0, fmt.Errorf("fadvise(POSIX_FADV_DONTNEED): %w", err)
	}
	return Size(rs), nil
}

// ReadOnlyMappings returns the mappings of the file exe that are not
// writable (github.com/prometheus/procfs parses /proc/self/maps). Writable
// mappings (the binary's data) are left out: their pages may hold writes.
func ReadOnlyMappings(maps []*procfs.ProcMap, exe string) []Range {
	var out []Range
	for _, m := range maps {
		if m.Perms == nil || m.Perms.Write || m.Pathname != exe || m.EndAddr <= m.StartAddr {
			continue
		}
		out = append(out, Range{Start: m.StartAddr, End: m.EndAddr})
	}
	return out
}

// RSSFile is the process's resident file-backed memory (RssFile of
// /proc/self/status), in bytes.
func RSSFile() (int64, error) {
	self, err := procfs.Self()
	if err != nil {
		return 0, err
	}
	st, err := self.NewStatus()
	if err != nil {
		return 0, err
	}
	return int64(st.RssFile), nil
}
