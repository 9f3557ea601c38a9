package eventhubs

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// ErrBlobNotFound is returned (wrapped) by the BlobStores here for a
// missing blob.
var ErrBlobNotFound = errors.New("blob not found")

// MemBlobStore is a BlobStore in memory, for tests and for hosts of one
// process.
type MemBlobStore struct {
	mu    sync.Mutex
	blobs map[string][]byte
}

// NewMemBlobStore returns an empty MemBlobStore.
func NewMemBlobStore() *MemBlobStore { return &MemBlobStore{blobs: map[string][]byte{}} }

// Put stores a blob.
func (m *MemBlobStore) Put(_ context.Context, name string, data []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.blobs[name] = append([]byte(nil), data...)
	return nil
}

// Get reads a blob.
func (m *MemBlobStore) Get(_ context.Context, name string) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	b, ok := m.blobs[name]
	if !ok {
		return nil, fmt.Errorf("eventhubs: blob %s: %w", name, ErrBlobNotFound)
	}
	return append([]byte(nil), b...), nil
}

// Delete deletes a blob; a missing one is no error.
func (m *MemBlobStore) Delete(_ context.Context, name string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.blobs, name)
	return nil
}

// Names returns the names of the blobs stored.
func (m *MemBlobStore) Names() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]string, 0, len(m.blobs))
	for n := range m.blobs {
		out = append(out, n)
	}
	return out
}

// DirBlobStore keeps blobs as files under a directory (for task hubs on
// local disk whose hosts share it). A blob is written to a temporary file
// and renamed, so a reader never sees part of one.
type DirBlobStore struct {
	Dir string
}

func (d DirBlobStore) path(name string) (string, error) {
	if name == "" || strings.HasPrefix(name, "/") || strings.Contains(name, "\\") {
		return "", fmt.Errorf("eventhubs: bad blob name %q", name)
	}
	for _, seg := range strings.Split(name, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return "", fmt.Errorf("eventhubs: bad blob name %q", name)
		}
	}
	return filepath.Join(d.Dir, filepath.FromSlash(name)), nil
}

// Put writes a blob.
func (d DirBlobStore) Put(_ context.Context, name string, data []byte) error {
	p, err := d.path(name)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return fmt.Errorf("eventhubs: blob %s: %w", name, err)
	}
	f, err := os.CreateTemp(filepath.Dir(p), ".tmp-*")
	if err != nil {
		return fmt.Errorf("eventhubs: blob %s: %w", name, err)
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), p)
	}
	if err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("eventhubs: blob %s: %w", name, err)
	}
	return nil
}

// Get reads a blob.
func (d DirBlobStore) Get(_ context.Context, name string) ([]byte, error) {
	p, err := d.path(name)
	if err != nil {
		return nil, err
	}
	b, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("eventhubs: blob %s: %w", name, ErrBlobNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("eventhubs: blob %s: %w", name, err)
	}
	return b, nil
}

// Delete deletes a blob; a missing one is no error.
func (d DirBlobStore) Delete(_ context.Context, name string) error {
	p, err := d.path(name)
	if err != nil {
		return err
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("eventhubs: blob %s: %w", name, err)
	}
	return nil
}

// Sweep deletes the blobs under prefix (a folder, e.g. a task hub's id)
// last written before cutoff, and returns how many (see
// blobstore.PayloadStore.Sweep). Temporary files of writes a crash cut
// short go too, once as old.
func (d DirBlobStore) Sweep(ctx context.Context, prefix string, cutoff time.Time) (int, error) {
	root, err := d.path(strings.TrimSuffix(prefix, "/"))
	if err != nil {
		return 0, err
	}
	n := 0
	err = filepath.WalkDir(root, func(path string, e fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if e.IsDir() {
			return nil
		}
		info, err := e.Info()
		if err != nil {
			return err
		}
		if info.ModTime().Before(cutoff) {
			if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return err
			}
			n++
		}
		return nil
	})
	if err != nil {
		return n, fmt.Errorf("eventhubs: sweep %s: %w", root, err)
	}
	return n, nil
}
