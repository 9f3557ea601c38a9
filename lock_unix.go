//go:build !windows

package netherite

import (
	"os"
	"syscall"
)

// lockFile takes an exclusive, non-blocking lock on f, held until f is
// closed (or the process ends): flock(2).
func lockFile(f *os.File) error {
	return syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
}
