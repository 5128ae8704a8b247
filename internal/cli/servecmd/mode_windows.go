package servecmd

// Windows has ACLs, not mode bits: os.Stat's permission bits say nothing
// about who can read the file.
func modeBitsMeaningful() bool { return false }
