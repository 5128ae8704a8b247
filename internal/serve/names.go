package serve

import (
	"fmt"
	"regexp"
	"strings"
)

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`)

// windowsDevices are names Windows maps to devices whatever the
// extension: a graph named "con" would be a file nobody can write there.
var windowsDevices = map[string]bool{"CON": true, "PRN": true, "AUX": true, "NUL": true,
	"COM1": true, "COM2": true, "COM3": true, "COM4": true, "COM5": true, "COM6": true, "COM7": true, "COM8": true, "COM9": true,
	"LPT1": true, "LPT2": true, "LPT3": true, "LPT4": true, "LPT5": true, "LPT6": true, "LPT7": true, "LPT8": true, "LPT9": true}

// CheckName reports whether name can name a graph: one path element of
// letters, digits, '_', '.', '-' (first a letter or digit, at most 64),
// not ending in .yaml/.yml and not a Windows device name. The error wraps
// ErrBadName.
func CheckName(name string) error {
	if !nameRE.MatchString(name) {
		return fmt.Errorf("%w %q: want 1-64 characters of A-Z a-z 0-9 _ . -, starting with a letter or digit", ErrBadName, name)
	}
	lower := strings.ToLower(name)
	if strings.HasSuffix(lower, ".yaml") || strings.HasSuffix(lower, ".yml") {
		return fmt.Errorf("%w %q: give the name without .yaml/.yml", ErrBadName, name)
	}
	base, _, _ := strings.Cut(strings.ToUpper(name), ".")
	if windowsDevices[base] {
		return fmt.Errorf("%w %q: a device name on Windows", ErrBadName, name)
	}
	return nil
}
