package lines

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// fileID is what a file is known by: device and inode (a hash of the path
// where there are none).
type fileID struct{ Dev, Ino uint64 }

// fpMax is how many of a file's first bytes its fingerprint holds: a
// copytruncate that grew past the old offset between two polls, or an
// inode reused by another file, shows as a different prefix.
const fpMax = 64

// stateVersion is the state file's format.
const stateVersion = 1

// stateFile is the tail source's durable state: per file, the offset up to
// which every line has been handed on (and acked, under a committing sink).
type stateFile struct {
	Version int         `json:"version"`
	Paths   []string    `json:"paths"` // the config's globs, for a reader of the file
	Files   []fileState `json:"files"`
}

type fileState struct {
	Path   string `json:"path"` // last known; where a rotated file is looked for
	Dev    uint64 `json:"dev"`
	Ino    uint64 `json:"ino"`
	Gen    int64  `json:"gen"` // times its content was replaced (copytruncate), in idempotency keys
	Offset int64  `json:"offset"`
	FP     string `json:"fp"` // hex of the first bytes (up to fpMax)
}

// defaultStatePath is <graph dir>/.schnitzel-state/<node id>-<hash of the
// globs>.tail.json: per graph directory and node, and a changed paths list
// starts afresh instead of inheriting offsets of other files.
func defaultStatePath(graphDir, nodeID string, paths []string) string {
	return filepath.Join(graphDir, ".schnitzel-state", stateName(nodeID, paths))
}

func stateName(nodeID string, paths []string) string {
	h := fnv.New32a()
	for _, p := range slices.Sorted(slices.Values(paths)) {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	id := strings.Map(func(r rune) rune {
		if r == '/' || r == '\\' || r == ':' || r < ' ' {
			return '_'
		}
		return r
	}, nodeID)
	return fmt.Sprintf("%s-%08x.tail.json", id, h.Sum32())
}

// readState reads path; a missing file is no state (ok false).
func readState(path string) (st stateFile, ok bool, err error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return st, false, nil
	}
	if err != nil {
		return st, false, err
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return st, false, fmt.Errorf("state file %s: %w (remove it to start afresh)", path, err)
	}
	if st.Version != stateVersion {
		return st, false, fmt.Errorf("state file %s: version %d, want %d", path, st.Version, stateVersion)
	}
	for _, f := range st.Files {
		if _, err := hex.DecodeString(f.FP); err != nil || f.Offset < 0 {
			return st, false, fmt.Errorf("state file %s: bad entry for %s", path, f.Path)
		}
	}
	return st, true, nil
}

// writeState replaces path atomically and durably: a temporary file,
// fsync, rename, fsync of the directory. A crash leaves the old state or
// the new one, never a torn one.
func writeState(path string, st stateFile) error {
	b, err := json.Marshal(st)
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(append(b, '\n'))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	return syncDir(filepath.Dir(path))
}
