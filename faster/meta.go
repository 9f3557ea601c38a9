package faster

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
)

// Names of MetaStore documents are slash-separated paths such as
// "commit-log.meta" or "checkpoints/0001/index.json": no empty, "." or
// ".." elements, no backslash or NUL, and no element starting with "."
// (DirMeta keeps its temporary files under such names). Both
// implementations apply the same rule so that tests on memory catch names
// the directory store would refuse.
func metaCheckName(store, name string) error {
	bad := name == "" || strings.ContainsAny(name, "\\\x00")
	if !bad {
		for _, elem := range strings.Split(name, "/") {
			if elem == "" || elem[0] == '.' {
				bad = true
				break
			}
		}
	}
	if bad {
		return fmt.Errorf("faster: meta store %s: invalid document name %q", store, name)
	}
	return nil
}

// MemoryMeta is a MetaStore in memory, safe for concurrent use.
type MemoryMeta struct {
	mu   sync.Mutex
	docs map[string][]byte
}

// NewMemoryMeta returns an empty memory MetaStore.
func NewMemoryMeta() *MemoryMeta {
	return &MemoryMeta{docs: make(map[string][]byte)}
}

// WriteFile implements MetaStore.
func (m *MemoryMeta) WriteFile(name string, data []byte) error {
	if err := metaCheckName("(memory)", name); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.docs[name] = slices.Clone(data)
	if m.docs[name] == nil {
		m.docs[name] = []byte{}
	}
	return nil
}

// ReadFile implements MetaStore; the result is a copy.
func (m *MemoryMeta) ReadFile(name string) ([]byte, error) {
	if err := metaCheckName("(memory)", name); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	data, ok := m.docs[name]
	if !ok {
		return nil, fmt.Errorf("faster: meta store (memory): read %q: %w", name, ErrNotExist)
	}
	return slices.Clone(data), nil
}

// Remove implements MetaStore.
func (m *MemoryMeta) Remove(name string) error {
	if err := metaCheckName("(memory)", name); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.docs, name)
	return nil
}

// List implements MetaStore.
func (m *MemoryMeta) List(prefix string) ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var names []string
	for name := range m.docs {
		if strings.HasPrefix(name, prefix) {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	return names, nil
}

// DirMeta is a MetaStore on a local directory: one file per document
// (names with slashes live in subdirectories). WriteFile writes a
// temporary file, fsyncs it, renames it over the document and fsyncs the
// directory, so a crash leaves the old or the new content.
type DirMeta struct {
	dir string
}

// NewDirMeta returns a MetaStore on dir, creating it if needed.
func NewDirMeta(dir string) (*DirMeta, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("faster: meta store %s: %w", dir, err)
	}
	return &DirMeta{dir: dir}, nil
}

// Dir returns the directory of the store.
func (m *DirMeta) Dir() string { return m.dir }

func (m *DirMeta) path(name string) (string, error) {
	if err := metaCheckName(m.dir, name); err != nil {
		return "", err
	}
	return filepath.Join(m.dir, filepath.FromSlash(name)), nil
}

// WriteFile implements MetaStore.
func (m *DirMeta) WriteFile(name string, data []byte) (err error) {
	path, err := m.path(name)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			err = fmt.Errorf("faster: meta store %s: write %q: %w", m.dir, name, err)
		}
	}()
	dir := filepath.Dir(path)
	if dir != filepath.Clean(m.dir) {
		if err := metaMkdirAll(m.dir, dir); err != nil {
			return err
		}
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if _, err := tmp.Write(data); err != nil {
		return err
	}
	if err := tmp.Sync(); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	return devSyncDir(dir)
}

// metaMkdirAll creates dir (below root) and fsyncs each parent whose
// entries it changed, so that a new document's directory survives a crash.
func metaMkdirAll(root, dir string) error {
	if _, err := os.Stat(dir); err == nil {
		return nil
	}
	parent := filepath.Dir(dir)
	if parent != filepath.Clean(root) && parent != dir {
		if err := metaMkdirAll(root, parent); err != nil {
			return err
		}
	}
	if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	return devSyncDir(parent)
}

// ReadFile implements MetaStore. A missing document gives an error
// wrapping both ErrNotExist and fs.ErrNotExist.
func (m *DirMeta) ReadFile(name string) ([]byte, error) {
	path, err := m.path(name)
	if err != nil {
		return nil, err
	}
	data, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("faster: meta store %s: read %q: %w (%w)", m.dir, name, ErrNotExist, err)
		}
		return nil, fmt.Errorf("faster: meta store %s: read %q: %w", m.dir, name, err)
	}
	return data, nil
}

// Remove implements MetaStore. Emptied subdirectories are left in place.
func (m *DirMeta) Remove(name string) error {
	path, err := m.path(name)
	if err != nil {
		return err
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("faster: meta store %s: remove %q: %w", m.dir, name, err)
	}
	return nil
}

// List implements MetaStore. Temporary files of writes in progress (or
// interrupted by a crash) are not listed.
func (m *DirMeta) List(prefix string) ([]string, error) {
	var names []string
	err := filepath.WalkDir(m.dir, func(path string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if path == m.dir {
			return nil
		}
		if strings.HasPrefix(e.Name(), ".") {
			if e.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		rel, err := filepath.Rel(m.dir, path)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if e.IsDir() {
			// Skip subtrees that cannot hold a match.
			if !strings.HasPrefix(rel+"/", prefix) && !strings.HasPrefix(prefix, rel+"/") {
				return filepath.SkipDir
			}
			return nil
		}
		if strings.HasPrefix(rel, prefix) {
			names = append(names, rel)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("faster: meta store %s: list %q: %w", m.dir, prefix, err)
	}
	slices.Sort(names)
	return names, nil
}
