package pageout

import (
	"fmt"
	"os"
	"syscall"
)

// madvPageout is MADV_PAGEOUT (Linux 5.4).
const madvPageout = 21

// Run asks the kernel to reclaim the pages of the running executable's
// read-only mappings and returns how many bytes those mappings span. An
// old kernel refuses (EINVAL), and nothing changes.
func Run() (int64, error) {
	exe, err := os.Readlink("/proc/self/exe")
	if err != nil {
		return 0, err
	}
	maps, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		return 0, err
	}
	rs := ReadOnlyMappings(string(maps), exe)
	if len(rs) == 0 {
		return 0, fmt.Errorf("no read-only mapping of %s", exe)
	}
	for _, r := range rs {
		if _, _, e := syscall.Syscall(syscall.SYS_MADVISE, r.Start, r.End-r.Start, madvPageout); e != 0 {
			return 0, fmt.Errorf("madvise(MADV_PAGEOUT): %w", e)
		}
	}
	return Size(rs), nil
}

// RSSFile is the process's resident file-backed memory (RssFile of
// /proc/self/status), in bytes.
func RSSFile() (int64, error) {
	raw, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, err
	}
	return rssFile(string(raw))
}
