//go:build linux

package faster

import (
	"os"
	"syscall"
)

// devFdatasync makes the data of f durable (fdatasync: metadata such as
// the modification time is not forced out).
func devFdatasync(f *os.File) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		for {
			serr = syscall.Fdatasync(int(fd))
			if serr != syscall.EINTR {
				return
			}
		}
	}); err != nil {
		return err
	}
	return serr
}
