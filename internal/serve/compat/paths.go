package compat

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// errOutside: a path a request names resolves outside the graphs and
// state directories (upstream accepted any path: D-API-4).
var errOutside = errors.New("path is outside the graphs and state directories")

// maxFileBytes bounds a file a compat request makes the server read.
const maxFileBytes = 4 << 20

// confine resolves the paths requests name: relative ones against the
// graphs directory; after Clean and EvalSymlinks the result must lie in
// the graphs or the state directory.
type confine struct {
	graphs, state string
}

// resolved is a confined path: the root it lies in and its path there.
type resolved struct {
	Abs  string // cleaned, symlinks resolved
	root string
	rel  string
}

func realDir(d string) string {
	if d == "" {
		return ""
	}
	abs, err := filepath.Abs(d)
	if err != nil {
		return ""
	}
	if r, err := filepath.EvalSymlinks(abs); err == nil {
		return r
	}
	return filepath.Clean(abs)
}

// evalPrefix resolves the symlinks of the longest existing prefix of p
// (a path that does not exist yet, or a missing file, still resolves).
func evalPrefix(p string) string {
	rest := ""
	cur := p
	for {
		if r, err := filepath.EvalSymlinks(cur); err == nil {
			return filepath.Join(r, rest)
		}
		parent := filepath.Dir(cur)
		if parent == cur {
			return p
		}
		rest = filepath.Join(filepath.Base(cur), rest)
		cur = parent
	}
}

func within(root, p string) (string, bool) {
	if root == "" {
		return "", false
	}
	rel, err := filepath.Rel(root, p)
	if err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) || filepath.IsAbs(rel) {
		return "", false
	}
	return rel, true
}

// Resolve confines raw; an error wraps errOutside or says why raw is not
// a path at all.
func (c confine) Resolve(raw string) (resolved, error) {
	if raw == "" {
		return resolved{}, errors.New("empty path")
	}
	if strings.ContainsFunc(raw, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return resolved{}, errors.New("path contains control characters")
	}
	graphs, state := realDir(c.graphs), realDir(c.state)
	p := raw
	if !filepath.IsAbs(p) {
		if graphs == "" {
			return resolved{}, fmt.Errorf("%q: %w", raw, errOutside)
		}
		p = filepath.Join(graphs, p)
	}
	p = evalPrefix(filepath.Clean(p))
	for _, root := range []string{graphs, state} {
		if rel, ok := within(root, p); ok {
			return resolved{Abs: p, root: root, rel: rel}, nil
		}
	}
	return resolved{}, fmt.Errorf("%q: %w", raw, errOutside)
}

// ReadFile reads a confined file through os.Root, so that a symlink
// swapped in after Resolve still cannot lead outside the root.
func (r resolved) ReadFile() ([]byte, error) {
	root, err := os.OpenRoot(r.root)
	if err != nil {
		return nil, err
	}
	defer root.Close()
	f, err := root.Open(r.rel)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("%s: %w", r.Abs, fs.ErrNotExist)
		}
		// os.Root refuses an escaping symlink with an error of its own.
		return nil, fmt.Errorf("%s: %w (%v)", r.Abs, errOutside, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if st.IsDir() {
		return nil, fmt.Errorf("%s is a directory", r.Abs)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxFileBytes+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxFileBytes {
		return nil, fmt.Errorf("%s is larger than %d bytes", r.Abs, maxFileBytes)
	}
	return data, nil
}
