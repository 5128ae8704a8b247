package service

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"errors"
	"flag"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/schnitzel-stream/schnitzel/internal/ops/paths"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata/")

func mustPaths(t *testing.T, goos string, user bool, env map[string]string) paths.Paths {
	t.Helper()
	p, err := paths.For(goos, user, func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// goldenConfigs are the definitions whose exact text is pinned in testdata.
func goldenConfigs(t *testing.T) map[string]Config {
	linuxHome := map[string]string{"HOME": "/home/op"}
	macHome := map[string]string{"HOME": "/Users/op"}
	winEnv := map[string]string{"ProgramData": `C:\ProgramData`, "LOCALAPPDATA": `C:\Users\op\AppData\Local`}
	return map[string]Config{
		"systemd_system": {Manager: Systemd, Binary: "/usr/local/bin/schnitzel",
			Graph: "/etc/schnitzel-stream/graphs/edge.yaml", Paths: mustPaths(t, "linux", false, nil)},
		"systemd_system_envfile_args": {Manager: Systemd, Name: "cam-01", Binary: "/opt/schnitzel bin/schnitzel",
			Graph: "/etc/schnitzel-stream/graphs/cam 01.yaml", EnvFile: "/etc/schnitzel-stream/cam01.env",
			Args: []string{"--log-file", "/var/log/schnitzel-stream/cam%01.log"}, Paths: mustPaths(t, "linux", false, nil)},
		"systemd_user": {Manager: Systemd, User: true, Home: "/home/op", Binary: "/home/op/bin/schnitzel",
			Graph: "/home/op/graphs/edge.yaml", Paths: mustPaths(t, "linux", true, linuxHome)},
		"launchd_system": {Manager: Launchd, Binary: "/usr/local/bin/schnitzel", RunAs: "_schnitzel",
			Graph: "/usr/local/etc/schnitzel-stream/graphs/edge & co.yaml", Paths: mustPaths(t, "darwin", false, nil)},
		"launchd_user": {Manager: Launchd, User: true, Home: "/Users/op", Binary: "/Users/op/bin/schnitzel",
			Graph: "/Users/op/graphs/edge.yaml", Paths: mustPaths(t, "darwin", true, macHome)},
		"windows_scm": {Manager: Windows, Binary: `C:\Program Files\Schnitzel\schnitzel.exe`,
			Graph: `C:\ProgramData\SchnitzelStream\config\edge.yaml`, Paths: mustPaths(t, "windows", false, winEnv)},
		"taskscheduler_system": {Manager: TaskScheduler, Binary: `C:\Program Files\Schnitzel\schnitzel.exe`,
			Graph: `C:\ProgramData\SchnitzelStream\config\edge <1>.yaml`, Paths: mustPaths(t, "windows", false, winEnv)},
		"taskscheduler_user": {Manager: TaskScheduler, User: true, RunAs: `EDGE\op`, Binary: `C:\Users\op\bin\schnitzel.exe`,
			Graph: `C:\Users\op\graphs\edge.yaml`, Paths: mustPaths(t, "windows", true, winEnv)},
	}
}

func goldenExt(m Manager) string {
	switch m {
	case Systemd:
		return ".service"
	case Launchd:
		return ".plist"
	case TaskScheduler:
		return ".xml"
	}
	return ".cmd"
}

func TestRenderGolden(t *testing.T) {
	for name, cfg := range goldenConfigs(t) {
		t.Run(name, func(t *testing.T) {
			def, err := Render(cfg)
			if err != nil {
				t.Fatal(err)
			}
			got := "# path: " + def.Path + "\n" + def.Content
			file := filepath.Join("testdata", name+goldenExt(cfg.Manager)+".golden")
			if *update {
				if err := os.WriteFile(file, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(file)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if got != string(want) {
				t.Errorf("%s differs from golden %s:\n%s", name, file, got)
			}
		})
	}
}

// systemdVerify runs systemd's own unit checker on content and returns the
// lines that name the unit file (lines about the host, such as a container
// without a running systemd, are not about our unit).
func systemdVerify(t *testing.T, analyze, dir, name, content string, user bool) []string {
	t.Helper()
	unit := filepath.Join(dir, name+".service")
	if err := os.WriteFile(unit, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	args := []string{"verify", "--man=no"}
	if user {
		args = append(args, "--user")
	}
	cmd := exec.Command(analyze, append(args, unit)...)
	runtimeDir := filepath.Join(dir, "run")
	if err := os.MkdirAll(runtimeDir, 0o700); err != nil {
		t.Fatal(err)
	}
	cmd.Env = append(os.Environ(), "SYSTEMD_LOG_LEVEL=notice", "XDG_RUNTIME_DIR="+runtimeDir)
	out, err := cmd.CombinedOutput()
	var problems []string
	for _, line := range strings.Split(string(out), "\n") {
		if strings.Contains(line, name) {
			problems = append(problems, line)
		}
	}
	if len(problems) == 0 && err != nil {
		t.Logf("user=%v: systemd-analyze exited %v with host-only messages:\n%s", user, err, out)
	}
	return problems
}

// TestSystemdAnalyzeVerify checks rendered units with systemd-analyze verify.
func TestSystemdAnalyzeVerify(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze not installed")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "bin dir", "schnitzel")
	graph := filepath.Join(dir, "graph.yaml")
	if err := os.MkdirAll(filepath.Dir(bin), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, []byte("#!/bin/sh\nexit 0\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(graph, []byte("version: 2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, user := range []bool{false, true} {
		cfg := Config{Manager: Systemd, Name: "schnitzel-verify", Binary: bin, Graph: graph, User: user, Home: dir,
			Args:  []string{"--log-file", "/var/log/x%y.log"},
			Paths: mustPaths(t, "linux", user, map[string]string{"HOME": dir})}
		if !user {
			cfg.RunAs = "root" // an account that exists here
		}
		def, err := Render(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if p := systemdVerify(t, analyze, dir, def.Name, def.Content, user); len(p) > 0 {
			t.Errorf("user=%v: systemd-analyze verify:\n%s\nunit:\n%s", user, strings.Join(p, "\n"), def.Content)
		}
		// The checker must be able to fail: a broken copy is reported.
		broken := strings.Replace(def.Content, "Restart=on-failure", "Restart=sometimes", 1)
		if p := systemdVerify(t, analyze, dir, "broken-verify", broken, user); len(p) == 0 {
			t.Errorf("user=%v: systemd-analyze accepted Restart=sometimes; the verify test cannot fail", user)
		}
	}
}

// checkPlist validates a property list against the plist DTD's structure:
// one top-level value; dict children alternate key and value; values are
// the DTD's elements.
func checkPlist(data []byte) (map[string]any, error) {
	dec := xml.NewDecoder(bytes.NewReader(data))
	dec.Strict = true
	var root struct {
		XMLName xml.Name
		Version string `xml:"version,attr"`
		Inner   []byte `xml:",innerxml"`
	}
	if err := dec.Decode(&root); err != nil {
		return nil, err
	}
	if root.XMLName.Local != "plist" || root.Version != "1.0" {
		return nil, errors.New("root is not <plist version=\"1.0\">")
	}
	inner := xml.NewDecoder(bytes.NewReader(root.Inner))
	vals, err := plistValues(inner, "")
	if err != nil {
		return nil, err
	}
	if len(vals) != 1 {
		return nil, errors.New("plist must hold exactly one value")
	}
	m, ok := vals[0].(map[string]any)
	if !ok {
		return nil, errors.New("top-level value is not a dict")
	}
	return m, nil
}

// plistValues reads values until the end element `end` (or EOF at top level).
func plistValues(dec *xml.Decoder, end string) ([]any, error) {
	var out []any
	for {
		tok, err := dec.Token()
		if err == io.EOF && end == "" {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		switch tk := tok.(type) {
		case xml.EndElement:
			if tk.Name.Local != end {
				return nil, errors.New("unexpected </" + tk.Name.Local + ">")
			}
			return out, nil
		case xml.CharData:
			if len(bytes.TrimSpace(tk)) != 0 {
				return nil, errors.New("stray text " + string(tk))
			}
		case xml.StartElement:
			v, err := plistValue(dec, tk.Name.Local)
			if err != nil {
				return nil, err
			}
			out = append(out, v)
		}
	}
}

func plistValue(dec *xml.Decoder, name string) (any, error) {
	switch name {
	case "string", "key", "integer", "real", "date", "data":
		var s string
		for {
			tok, err := dec.Token()
			if err != nil {
				return nil, err
			}
			switch tk := tok.(type) {
			case xml.CharData:
				s += string(tk)
			case xml.EndElement:
				if name == "key" {
					return keyTok(s), nil
				}
				return s, nil
			default:
				return nil, errors.New("<" + name + "> must hold text only")
			}
		}
	case "true", "false":
		if _, err := plistValues(dec, name); err != nil {
			return nil, err
		}
		return name == "true", nil
	case "array":
		return plistValues(dec, "array")
	case "dict":
		vals, err := plistValues(dec, "dict")
		if err != nil {
			return nil, err
		}
		if len(vals)%2 != 0 {
			return nil, errors.New("dict has a key without a value")
		}
		m := map[string]any{}
		for i := 0; i < len(vals); i += 2 {
			k, ok := vals[i].(keyTok)
			if !ok {
				return nil, errors.New("dict entry does not start with <key>")
			}
			if _, isKey := vals[i+1].(keyTok); isKey {
				return nil, errors.New("dict key " + string(k) + " followed by a key")
			}
			if _, dup := m[string(k)]; dup {
				return nil, errors.New("duplicate dict key " + string(k))
			}
			m[string(k)] = vals[i+1]
		}
		return m, nil
	}
	return nil, errors.New("<" + name + "> is not a plist element")
}

type keyTok string

func TestLaunchdPlistStructure(t *testing.T) {
	for name, cfg := range goldenConfigs(t) {
		if cfg.Manager != Launchd {
			continue
		}
		t.Run(name, func(t *testing.T) {
			def, err := Render(cfg)
			if err != nil {
				t.Fatal(err)
			}
			m, err := checkPlist([]byte(def.Content))
			if err != nil {
				t.Fatalf("invalid plist: %v\n%s", err, def.Content)
			}
			if m["Label"] != LaunchdLabel(DefaultName) {
				t.Errorf("Label = %v", m["Label"])
			}
			args, _ := m["ProgramArguments"].([]any)
			if len(args) != 3 || args[0] != cfg.Binary || args[1] != "--graph" || args[2] != cfg.Graph {
				t.Errorf("ProgramArguments = %v", args)
			}
			if m["RunAtLoad"] != true || m["WorkingDirectory"] != cfg.Paths.State {
				t.Errorf("RunAtLoad/WorkingDirectory = %v/%v", m["RunAtLoad"], m["WorkingDirectory"])
			}
			ka, _ := m["KeepAlive"].(map[string]any)
			if ka["SuccessfulExit"] != false {
				t.Errorf("KeepAlive = %v", m["KeepAlive"])
			}
			for _, k := range []string{"ThrottleInterval", "StandardOutPath", "StandardErrorPath", "ExitTimeOut"} {
				if _, ok := m[k]; !ok {
					t.Errorf("missing key %s", k)
				}
			}
			if !strings.HasPrefix(m["StandardErrorPath"].(string), cfg.Paths.Logs+"/") {
				t.Errorf("StandardErrorPath %v not under logs %s", m["StandardErrorPath"], cfg.Paths.Logs)
			}
		})
	}
}

// TestLaunchdPlistPythonPlistlib parses the plists with CPython's plistlib,
// an independent real plist parser, when python3 is installed.
func TestLaunchdPlistPythonPlistlib(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 not installed")
	}
	script := `import json, plistlib, sys
d = plistlib.loads(sys.stdin.buffer.read())
json.dump(d, sys.stdout)`
	for name, cfg := range goldenConfigs(t) {
		if cfg.Manager != Launchd {
			continue
		}
		t.Run(name, func(t *testing.T) {
			def, err := Render(cfg)
			if err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command(py, "-c", script)
			cmd.Stdin = strings.NewReader(def.Content)
			out, err := cmd.Output()
			if err != nil {
				var ee *exec.ExitError
				if errors.As(err, &ee) {
					t.Fatalf("plistlib rejects the plist: %s", ee.Stderr)
				}
				t.Fatal(err)
			}
			var d map[string]any
			if err := json.Unmarshal(out, &d); err != nil {
				t.Fatal(err)
			}
			if d["Label"] != LaunchdLabel(DefaultName) || d["RunAtLoad"] != true ||
				d["ThrottleInterval"] != float64(LaunchdThrottle) || d["Umask"] != float64(0o027) {
				t.Errorf("plistlib read %v", d)
			}
			args, _ := d["ProgramArguments"].([]any)
			if len(args) != 3 || args[2] != cfg.Graph {
				t.Errorf("ProgramArguments %v", args)
			}
		})
	}
}

func TestCheckPlistRejects(t *testing.T) {
	bad := []string{
		`<plist version="1.0"><dict><key>a</key></dict></plist>`,
		`<plist version="1.0"><dict><string>a</string><string>b</string></dict></plist>`,
		`<plist version="1.0"><dict><key>a</key><foo/></dict></plist>`,
		`<plist version="1.0"><dict><key>a</key><true/><key>a</key><true/></dict></plist>`,
		`<plist version="1.0"><dict></plist>`,
		`<plist><dict/></plist>`,
	}
	for _, s := range bad {
		if _, err := checkPlist([]byte(s)); err == nil {
			t.Errorf("accepted %s", s)
		}
	}
}

type taskXML struct {
	XMLName      xml.Name                `xml:"http://schemas.microsoft.com/windows/2004/02/mit/task Task"`
	Version      string                  `xml:"version,attr"`
	URI          string                  `xml:"RegistrationInfo>URI"`
	Boot         *struct{ Enabled bool } `xml:"Triggers>BootTrigger"`
	Logon        *struct{ Enabled bool } `xml:"Triggers>LogonTrigger"`
	UserID       string                  `xml:"Principals>Principal>UserId"`
	RunLevel     string                  `xml:"Principals>Principal>RunLevel"`
	TimeLimit    string                  `xml:"Settings>ExecutionTimeLimit"`
	RestartEvery string                  `xml:"Settings>RestartOnFailure>Interval"`
	RestartCount int                     `xml:"Settings>RestartOnFailure>Count"`
	Command      string                  `xml:"Actions>Exec>Command"`
	Arguments    string                  `xml:"Actions>Exec>Arguments"`
	WorkDir      string                  `xml:"Actions>Exec>WorkingDirectory"`
}

func TestTaskSchedulerXML(t *testing.T) {
	for name, cfg := range goldenConfigs(t) {
		if cfg.Manager != TaskScheduler {
			continue
		}
		t.Run(name, func(t *testing.T) {
			def, err := Render(cfg)
			if err != nil {
				t.Fatal(err)
			}
			var task taskXML
			dec := xml.NewDecoder(strings.NewReader(def.Content))
			dec.Strict = true
			if err := dec.Decode(&task); err != nil {
				t.Fatalf("task XML does not parse: %v", err)
			}
			if task.Version != "1.2" || task.URI != `\`+DefaultName || task.RunLevel != "LeastPrivilege" ||
				task.TimeLimit != "PT0S" || task.RestartEvery != "PT1M" || task.RestartCount < 1 || task.RestartCount > 999 {
				t.Errorf("task = %+v", task)
			}
			if task.Command != cfg.Binary || task.WorkDir != cfg.Paths.State {
				t.Errorf("exec = %q in %q", task.Command, task.WorkDir)
			}
			if want := WindowsCommandLine([]string{"--graph", cfg.Graph, "--log-file", cfg.Paths.Logs + `\schnitzel.log`}); task.Arguments != want {
				t.Errorf("arguments = %q, want %q", task.Arguments, want)
			}
			if cfg.User != (task.Logon != nil) || cfg.User == (task.Boot != nil) {
				t.Errorf("triggers boot=%v logon=%v for user=%v", task.Boot, task.Logon, cfg.User)
			}
			if !cfg.User && task.UserID != LocalServiceSID {
				t.Errorf("system task runs as %q, want LocalService", task.UserID)
			}
		})
	}
}

func TestWindowsCommandLine(t *testing.T) {
	tests := []struct {
		in   []string
		want string
	}{
		{[]string{`C:\a\b.exe`, "--graph", `C:\g.yaml`}, `C:\a\b.exe --graph C:\g.yaml`},
		{[]string{`C:\Program Files\s.exe`}, `"C:\Program Files\s.exe"`},
		{[]string{""}, `""`},
		{[]string{`a"b`}, `"a\"b"`},
		{[]string{`C:\dir with space\`}, `"C:\dir with space\\"`},
		{[]string{`x\"y z`}, `"x\\\"y z"`},
	}
	for _, tt := range tests {
		if got := WindowsCommandLine(tt.in); got != tt.want {
			t.Errorf("WindowsCommandLine(%q) = %s, want %s", tt.in, got, tt.want)
		}
	}
}

func TestRenderErrors(t *testing.T) {
	lp := mustPaths(t, "linux", false, nil)
	wp := mustPaths(t, "windows", false, nil)
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"unknown manager", Config{Manager: "upstart", Binary: "/b", Graph: "/g", Paths: lp}, "unknown service manager"},
		{"relative graph", Config{Manager: Systemd, Binary: "/b", Graph: "g.yaml", Paths: lp}, "not absolute"},
		{"relative binary", Config{Manager: Systemd, Binary: "b", Graph: "/g", Paths: lp}, "not absolute"},
		{"unix path for windows", Config{Manager: Windows, Binary: "/b", Graph: `C:\g`, Paths: wp}, "not absolute for windows"},
		{"bad name", Config{Manager: Systemd, Name: "a b", Binary: "/b", Graph: "/g", Paths: lp}, "invalid service name"},
		{"windows user", Config{Manager: Windows, User: true, Binary: `C:\b`, Graph: `C:\g`, Paths: wp}, "no per-user services"},
		{"paths for other os", Config{Manager: Launchd, Binary: "/b", Graph: "/g", Paths: lp}, "paths are for linux"},
		{"task run-as", Config{Manager: TaskScheduler, RunAs: `X\y`, Binary: `C:\b`, Graph: `C:\g`, Paths: wp}, "--run-as is not supported"},
		{"relative env file", Config{Manager: Systemd, Binary: "/b", Graph: "/g", EnvFile: "x.env", Paths: lp}, "env file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Render(tt.cfg)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
		})
	}
}
