//go:build linux && (amd64 || arm64)

package pageout

import (
	"os"
	"syscall"
)

// fadvDontneed is POSIX_FADV_DONTNEED: the file's clean pages that no
// process maps leave the page cache. Reading the file is permission enough.
const fadvDontneed = 4

func evict(f *os.File) error {
	if _, _, e := syscall.Syscall6(syscall.SYS_FADVISE64, f.Fd(), 0, 0, fadvDontneed, 0, 0); e != 0 {
		return e
	}
	return nil
}
