package ffmpeg

// defaultHandoff writes the script to a private file: exec cannot pass
// extra descriptors to a Windows child.
var defaultHandoff = fileHandoff

// newHandoff is the handoff Start uses (UseFileHandoff).
var newHandoff = defaultHandoff
