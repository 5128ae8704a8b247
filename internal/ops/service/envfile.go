package service

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"regexp"
	"strings"
)

var envKeyRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// EnvVar is one KEY=VALUE assignment.
type EnvVar struct{ Key, Value string }

// ParseEnvFile reads an environment file in the subset of systemd's
// EnvironmentFile= syntax that shells also accept: KEY=VALUE lines, blank
// lines and lines starting with '#' or ';' ignored, an optional leading
// "export ", values optionally in single quotes (literal) or double quotes
// (\" \\ \n \t \$ escapes). name is used in errors.
func ParseEnvFile(r io.Reader, name string) ([]EnvVar, error) {
	var out []EnvVar
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' || line[0] == ';' {
			continue
		}
		line = strings.TrimPrefix(line, "export ")
		key, val, ok := strings.Cut(line, "=")
		key = strings.TrimSpace(key)
		if !ok || !envKeyRE.MatchString(key) {
			return nil, fmt.Errorf("%s:%d: want KEY=VALUE, got %q", name, n, sc.Text())
		}
		val = strings.TrimSpace(val)
		switch {
		case len(val) >= 2 && val[0] == '\'' && val[len(val)-1] == '\'':
			val = val[1 : len(val)-1]
		case len(val) >= 2 && val[0] == '"' && val[len(val)-1] == '"':
			v, err := unquoteDouble(val[1 : len(val)-1])
			if err != nil {
				return nil, fmt.Errorf("%s:%d: %s: %w", name, n, key, err)
			}
			val = v
		case strings.ContainsAny(val[:min(1, len(val))], `"'`):
			return nil, fmt.Errorf("%s:%d: %s: unterminated quote", name, n, key)
		}
		out = append(out, EnvVar{key, val})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return out, nil
}

func unquoteDouble(s string) (string, error) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '"' {
			return "", errors.New(`unescaped " inside double quotes`)
		}
		if c != '\\' {
			b.WriteByte(c)
			continue
		}
		i++
		if i == len(s) {
			return "", errors.New("trailing backslash")
		}
		switch s[i] {
		case 'n':
			b.WriteByte('\n')
		case 't':
			b.WriteByte('\t')
		case '"', '\\', '$', '\'':
			b.WriteByte(s[i])
		default:
			b.WriteByte('\\')
			b.WriteByte(s[i])
		}
	}
	return b.String(), nil
}

// LoadEnvFile sets the variables of an environment file in the process
// environment (file values win, as with systemd's EnvironmentFile=). A
// missing file is not an error: the default env file is optional.
func LoadEnvFile(path string) error {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("env file: %w", err)
	}
	defer f.Close()
	vars, err := ParseEnvFile(f, path)
	if err != nil {
		return err
	}
	for _, v := range vars {
		if err := os.Setenv(v.Key, v.Value); err != nil {
			return fmt.Errorf("env file %s: set %s: %w", path, v.Key, err)
		}
	}
	return nil
}
