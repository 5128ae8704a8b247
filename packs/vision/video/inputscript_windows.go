package video

// newHandoff writes the script to a private file: exec cannot pass extra
// descriptors to a Windows child.
var newHandoff = fileHandoff
