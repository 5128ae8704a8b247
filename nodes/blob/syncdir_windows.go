//go:build windows

package blob

import "os"

// syncDir is a no-op: Windows cannot open a directory for syncing, and NTFS
// journals directory entry changes itself.
func syncDir(*os.Root, string) error { return nil }
