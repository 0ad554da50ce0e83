package eventstore

import (
	"errors"
	"fmt"
	"os"
	"syscall"
)

// ErrLocked is returned by Lock while another process holds the log.
var ErrLocked = errors.New("the event log is in use by another wallet_writer")

// Lock takes the exclusive right to write the log at path, held until the
// returned file is closed or the process dies (the kernel drops the lock
// even after kill -9). It is a lock on path+".lock", not on the database, so
// readers such as the sqlite3 shell or `wallet_writer verify` are never
// blocked by it. Together with the partition lease it makes the writer
// single: one process per file, one file per partition.
func Lock(path string) (*os.File, error) {
	f, err := os.OpenFile(path+".lock", os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("%s: %w", path, ErrLocked)
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	return f, nil
}
