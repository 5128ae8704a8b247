package paths

import (
	"errors"
	"runtime"
	"testing"
)

func envOf(m map[string]string) Getenv { return func(k string) string { return m[k] } }

func TestFor(t *testing.T) {
	tests := []struct {
		name string
		goos string
		user bool
		env  map[string]string
		want Paths
	}{
		{"linux system", "linux", false, map[string]string{"HOME": "/home/a"}, Paths{"linux", System,
			"/etc/schnitzel-stream", "/var/lib/schnitzel-stream", "/var/log/schnitzel-stream",
			"/etc/schnitzel-stream/schnitzel-stream.env"}},
		{"linux user default xdg", "linux", true, map[string]string{"HOME": "/home/a"}, Paths{"linux", User,
			"/home/a/.config/schnitzel-stream", "/home/a/.local/state/schnitzel-stream",
			"/home/a/.local/state/schnitzel-stream/logs", "/home/a/.config/schnitzel-stream/schnitzel-stream.env"}},
		{"linux user explicit xdg", "linux", true, map[string]string{"XDG_CONFIG_HOME": "/x/cfg/", "XDG_STATE_HOME": "/x/st"},
			Paths{"linux", User, "/x/cfg/schnitzel-stream", "/x/st/schnitzel-stream", "/x/st/schnitzel-stream/logs",
				"/x/cfg/schnitzel-stream/schnitzel-stream.env"}},
		{"linux user relative xdg ignored", "linux", true, map[string]string{"HOME": "/h", "XDG_CONFIG_HOME": "rel"},
			Paths{"linux", User, "/h/.config/schnitzel-stream", "/h/.local/state/schnitzel-stream",
				"/h/.local/state/schnitzel-stream/logs", "/h/.config/schnitzel-stream/schnitzel-stream.env"}},
		{"freebsd falls back to unix layout", "freebsd", false, nil, Paths{"freebsd", System,
			"/etc/schnitzel-stream", "/var/lib/schnitzel-stream", "/var/log/schnitzel-stream",
			"/etc/schnitzel-stream/schnitzel-stream.env"}},
		{"darwin system", "darwin", false, nil, Paths{"darwin", System,
			"/usr/local/etc/schnitzel-stream", "/usr/local/var/lib/schnitzel-stream", "/usr/local/var/log/schnitzel-stream",
			"/usr/local/etc/schnitzel-stream/schnitzel-stream.env"}},
		{"darwin user", "darwin", true, map[string]string{"HOME": "/Users/a"}, Paths{"darwin", User,
			"/Users/a/Library/Application Support/schnitzel-stream/config",
			"/Users/a/Library/Application Support/schnitzel-stream/state",
			"/Users/a/Library/Logs/schnitzel-stream",
			"/Users/a/Library/Application Support/schnitzel-stream/config/schnitzel-stream.env"}},
		{"windows system default", "windows", false, nil, Paths{"windows", System,
			`C:\ProgramData\SchnitzelStream\config`, `C:\ProgramData\SchnitzelStream\state`,
			`C:\ProgramData\SchnitzelStream\logs`, `C:\ProgramData\SchnitzelStream\config\schnitzel-stream.env`}},
		{"windows system env", "windows", false, map[string]string{"ProgramData": `D:\PD\`}, Paths{"windows", System,
			`D:\PD\SchnitzelStream\config`, `D:\PD\SchnitzelStream\state`,
			`D:\PD\SchnitzelStream\logs`, `D:\PD\SchnitzelStream\config\schnitzel-stream.env`}},
		{"windows user", "windows", true, map[string]string{"LOCALAPPDATA": `C:\Users\a\AppData\Local`}, Paths{"windows", User,
			`C:\Users\a\AppData\Local\SchnitzelStream\config`, `C:\Users\a\AppData\Local\SchnitzelStream\state`,
			`C:\Users\a\AppData\Local\SchnitzelStream\logs`, `C:\Users\a\AppData\Local\SchnitzelStream\config\schnitzel-stream.env`}},
		{"windows user profile fallback", "windows", true, map[string]string{"USERPROFILE": `C:\Users\b`}, Paths{"windows", User,
			`C:\Users\b\AppData\Local\SchnitzelStream\config`, `C:\Users\b\AppData\Local\SchnitzelStream\state`,
			`C:\Users\b\AppData\Local\SchnitzelStream\logs`, `C:\Users\b\AppData\Local\SchnitzelStream\config\schnitzel-stream.env`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := For(tt.goos, tt.user, envOf(tt.env))
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("For(%s, user=%v)\n got %+v\nwant %+v", tt.goos, tt.user, got, tt.want)
			}
		})
	}
}

func TestForNoHome(t *testing.T) {
	for _, goos := range []string{"linux", "darwin", "windows"} {
		if _, err := For(goos, true, nil); !errors.Is(err, ErrNoHome) {
			t.Errorf("%s: err = %v, want ErrNoHome", goos, err)
		}
	}
}

func TestIsAbs(t *testing.T) {
	tests := []struct {
		goos, p string
		want    bool
	}{
		{"linux", "/a", true}, {"linux", "a/b", false}, {"linux", `C:\a`, false},
		{"windows", `C:\a`, true}, {"windows", `c:/a`, true}, {"windows", `\\srv\share`, true},
		{"windows", `a\b`, false}, {"windows", `C:a`, false}, {"windows", "/a", false},
	}
	for _, tt := range tests {
		if got := IsAbs(tt.goos, tt.p); got != tt.want {
			t.Errorf("IsAbs(%s, %q) = %v", tt.goos, tt.p, got)
		}
	}
}

func TestDefaultMatchesHost(t *testing.T) {
	p, err := Default(false)
	if err != nil {
		t.Fatal(err)
	}
	if p.OS != runtime.GOOS || p.Scope != System {
		t.Errorf("Default(false) = %+v", p)
	}
	t.Setenv("HOME", "/tmp/h")
	t.Setenv("XDG_CONFIG_HOME", "")
	t.Setenv("XDG_STATE_HOME", "")
	u, err := Default(true)
	if err != nil {
		t.Fatal(err)
	}
	if runtime.GOOS == "linux" && u.Config != "/tmp/h/.config/schnitzel-stream" {
		t.Errorf("Default(true).Config = %q", u.Config)
	}
}
