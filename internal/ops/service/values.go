package service

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Every value of a Config ends up inside a definition whose syntax is
// line-based (systemd units, sc.exe scripts) or XML (plists, tasks). A
// newline in --run-as or in an argument after "--" would add directives of
// its own (ExecStartPre=/bin/sh ...), so control characters are refused in
// every value, for every manager, before anything is rendered.

// field is one rendered value and the flag (or source) it came from.
type field struct{ name, value string }

func (c Config) fields() []field {
	fs := []field{
		{"--name", c.Name}, {"--binary", c.Binary}, {"--graph", c.Graph},
		{"--env-file", c.EnvFile}, {"--run-as", c.RunAs},
		{"HOME", c.Home},
		{"the state directory (working directory)", c.Paths.State},
		{"the log directory", c.Paths.Logs},
		{"the config directory", c.Paths.Config},
		{"the default env file", c.Paths.EnvFile},
	}
	for i, a := range c.Args {
		fs = append(fs, field{fmt.Sprintf("argument %d after --", i+1), a})
	}
	return fs
}

// CheckValues refuses a control character (or invalid UTF-8) in any value
// that a definition renders, naming the flag:
//
//	--run-as: contains a newline (control character U+000A)
func CheckValues(c Config) error {
	for _, f := range c.fields() {
		if err := checkValue(f.value); err != nil {
			return usageErr("remove it: no service manager accepts it in a definition", "%s: %v", f.name, err)
		}
		// The sc.exe script is a batch file: cmd.exe has no escape for a
		// quote inside "...", so one would end the quoting there and let
		// the rest run as commands (Windows file names cannot hold it).
		if c.Manager == Windows && strings.ContainsRune(f.value, '"') {
			return usageErr("remove it", "%s: contains a double quote, which the Windows service script cannot quote", f.name)
		}
	}
	return nil
}

func checkValue(s string) error {
	if !utf8.ValidString(s) {
		return fmt.Errorf("is not valid UTF-8")
	}
	for _, r := range s {
		if unicode.IsControl(r) || r == '\u2028' || r == '\u2029' {
			return fmt.Errorf("contains %s", describeControl(r))
		}
	}
	return nil
}

func describeControl(r rune) string {
	code := fmt.Sprintf("U+%04X", r)
	switch r {
	case '\n':
		return "a newline (control character " + code + ")"
	case '\r':
		return "a carriage return (control character " + code + ")"
	case '\t':
		return "a tab (control character " + code + ")"
	case 0:
		return "a NUL byte (control character " + code + ")"
	case '\u2028', '\u2029':
		return "a line separator (" + code + ")"
	}
	return "a control character (" + code + ")"
}

// unixAccountRE is what systemd's User= and launchd's UserName accept
// portably: a name (letters, digits, '_', '.', '-', not starting with '-',
// an optional trailing '$') or a numeric ID.
var unixAccountRE = regexp.MustCompile(`^(?:[A-Za-z0-9_][A-Za-z0-9_.-]{0,255}\$?|[0-9]+)$`)

// checkAccount refuses a --run-as that is not an account name for the
// managers that put it into a definition verbatim.
func (c Config) checkAccount() error {
	if c.RunAs == "" || (c.Manager != Systemd && c.Manager != Launchd) {
		return nil
	}
	if !unixAccountRE.MatchString(c.RunAs) {
		return usageErr("pass the name of an existing account (letters, digits, '_', '.', '-') or a numeric UID",
			"--run-as: %q is not an account name", c.RunAs)
	}
	return nil
}

// RootWarning says, when the service would run as root, why that is a bad
// idea; "" otherwise. Call it on the Config given to Render or Install.
func RootWarning(c Config) string {
	if c.User || (c.Manager != Systemd && c.Manager != Launchd) {
		return ""
	}
	explicit := c.RunAs == "root"
	if n, err := strconv.Atoi(c.RunAs); err == nil && n == 0 {
		explicit = true
	}
	switch {
	case explicit:
		return fmt.Sprintf("--run-as %s: the %s service runs as root; a graph (its plugins, ffmpeg, any command node) then has full control of this machine. Use a dedicated account (the default for systemd: %s)",
			c.RunAs, c.Manager, DefaultRunAs)
	case c.Manager == Launchd && strings.TrimSpace(c.RunAs) == "":
		return "the launchd daemon runs as root (no --run-as); a graph then has full control of this machine. Pass --run-as with a dedicated account (e.g. _schnitzel)"
	}
	return ""
}
