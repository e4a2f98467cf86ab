// Package pageout hands the kernel back the pages of the executable that
// only start-up used.
//
// The binary is a 75 MiB static executable. Package initialisation (about
// 1,400 packages, most of them k8s.io/api, client-go and the dependencies
// of k8s.io/cloud-provider/app) touches code and read-only data all over
// it, and each touch maps 64 KiB around it (the kernel's fault-around), so
// a controller that has just started shows about 55-60 MB of the binary in
// its RSS (RssFile), twice what it touches afterwards. Those pages are
// clean copies of the file. Run unmaps them from the process
// (MADV_DONTNEED) and tells the kernel the file's pages are not needed
// (POSIX_FADV_DONTNEED): pages nobody maps leave the page cache, the rest
// go to the inactive list, first in line when memory runs short. The pages
// still in use map again on their next touch, from the page cache.
// docs/memory.md has the numbers.
package pageout

import (
	"bufio"
	"errors"
	"strconv"
	"strings"
)

// Range is one mapping, [Start, End).
type Range struct{ Start, End uintptr }

// ReadOnlyMappings returns the mappings of the file exe that are not
// writable, from the text of /proc/self/maps. Writable mappings (the
// binary's data) are left out: their pages may hold writes.
func ReadOnlyMappings(maps, exe string) []Range {
	var out []Range
	sc := bufio.NewScanner(strings.NewReader(maps))
	for sc.Scan() {
		// address perms offset dev inode pathname (the path may hold spaces)
		f := strings.SplitN(sc.Text(), " ", 6)
		if len(f) < 6 || len(f[1]) < 2 || f[1][1] == 'w' || strings.TrimLeft(f[5], " ") != exe {
			continue
		}
		lo, hi, ok := strings.Cut(f[0], "-")
		if !ok {
			continue
		}
		start, err1 := strconv.ParseUint(lo, 16, 64)
		end, err2 := strconv.ParseUint(hi, 16, 64)
		if err1 != nil || err2 != nil || end <= start {
			continue
		}
		out = append(out, Range{Start: uintptr(start), End: uintptr(end)})
	}
	return out
}

// Size is the bytes of rs.
func Size(rs []Range) int64 {
	var n int64
	for _, r := range rs {
		n += int64(r.End - r.Start)
	}
	return n
}

// rssFile reads RssFile from the text of /proc/<pid>/status, in bytes.
func rssFile(status string) (int64, error) {
	for _, l := range strings.Split(status, "\n") {
		if v, ok := strings.CutPrefix(l, "RssFile:"); ok {
			kib, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kib << 10, err
		}
	}
	return 0, errors.New("no RssFile in the process status")
}
