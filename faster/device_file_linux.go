//go:build linux

package faster

import (
	"errors"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
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

// devAllocate reserves the blocks of f up to size (fallocate), falling
// back to a sparse extension where the file system does not support it.
func devAllocate(f *os.File, size int64) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		for {
			serr = unix.Fallocate(int(fd), 0, 0, size)
			if serr != unix.EINTR {
				return
			}
		}
	}); err != nil {
		return err
	}
	if errors.Is(serr, unix.EOPNOTSUPP) || errors.Is(serr, unix.ENOSYS) {
		return f.Truncate(size)
	}
	return serr
}
