//go:build !windows

package video

// newHandoff passes the script on an inherited pipe (a variable: tests
// run the file handoff too).
var newHandoff = pipeHandoff
