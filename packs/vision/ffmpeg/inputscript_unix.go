//go:build !windows

package ffmpeg

// defaultHandoff passes the script on an inherited pipe.
var defaultHandoff = pipeHandoff

// newHandoff is the handoff Start uses (a variable: tests run the file
// handoff too, UseFileHandoff).
var newHandoff = defaultHandoff
