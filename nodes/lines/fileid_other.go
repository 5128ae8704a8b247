//go:build !unix

package lines

import (
	"hash/fnv"
	"os"
)

// idOf has no device and inode to give here: a file is known by its path
// alone, so rename rotation is not followed (docs/connectors-lines.md).
func idOf(fi os.FileInfo, path string) fileID {
	h := fnv.New64a()
	h.Write([]byte(path))
	return fileID{Ino: h.Sum64()}
}
