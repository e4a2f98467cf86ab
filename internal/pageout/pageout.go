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

// Range is one mapping, [Start, End).
type Range struct{ Start, End uintptr }

// Size is the bytes of rs.
func Size(rs []Range) int64 {
	var n int64
	for _, r := range rs {
		n += int64(r.End - r.Start)
	}
	return n
}
