package service

import (
	"context"
	"encoding/csv"
	"os"
	"path/filepath"
	"strings"
	"unicode/utf16"
)

// utf16Task converts the rendered task to UTF-16LE with BOM, the encoding
// schtasks /XML reliably accepts.
func utf16Task(content string) []byte {
	content = strings.Replace(content, `encoding="UTF-8"`, `encoding="UTF-16"`, 1)
	u := utf16.Encode([]rune(content))
	out := make([]byte, 2, 2+2*len(u))
	out[0], out[1] = 0xFF, 0xFE
	for _, r := range u {
		out = append(out, byte(r), byte(r>>8))
	}
	return out
}

func (in *Installer) installTask(ctx context.Context, c Config, def Definition, rb *rollback) error {
	if _, err := in.Host.LookPath("schtasks"); err != nil {
		return usageErr("install on Windows, or print the XML with `schnitzel service render --manager taskscheduler`",
			"schtasks not found")
	}
	if _, err := in.Host.Run(ctx, "schtasks", "/Query", "/TN", c.Name); err == nil && !in.Force {
		return usageErr("run `schnitzel service uninstall --manager taskscheduler` first, or pass --force",
			"already installed: task %s exists", c.Name)
	}
	if err := in.mkdirs(c, rb, ""); err != nil {
		return err
	}
	if !c.User && c.RunAs == "" {
		if err := in.grantLocalService(ctx, c, rb); err != nil {
			return err
		}
	}
	dir, err := os.MkdirTemp("", "schnitzel-task-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	xmlPath := filepath.Join(dir, c.Name+".xml")
	if err := os.WriteFile(xmlPath, utf16Task(def.Content), 0o600); err != nil {
		return err
	}
	args := []string{"/Create", "/TN", c.Name, "/XML", xmlPath}
	if in.Force {
		args = append(args, "/F")
	}
	return in.run(ctx, rb, []string{"schtasks", "/Delete", "/TN", c.Name, "/F"}, "schtasks", args...)
}

// grantLocalService lets LocalService modify the state and logs directories.
func (in *Installer) grantLocalService(ctx context.Context, c Config, rb *rollback) error {
	for _, d := range c.writableDirs() {
		if err := in.run(ctx, rb, []string{"icacls", d, "/remove:g", "*" + LocalServiceSID},
			"icacls", d, "/grant", "*"+LocalServiceSID+":(OI)(CI)M"); err != nil {
			return err
		}
	}
	return nil
}

func (in *Installer) statusTask(ctx context.Context, c Config) (State, error) {
	st := State{Manager: TaskScheduler, Name: c.Name}
	out, err := in.Host.Run(ctx, "schtasks", "/Query", "/TN", c.Name, "/FO", "CSV", "/NH")
	if err != nil {
		st.Detail = "not installed"
		return st, nil
	}
	st.Installed = true
	st.Detail = "unknown"
	// "TaskName","Next Run Time","Status"
	if rec, err := csv.NewReader(strings.NewReader(strings.TrimSpace(string(out)))).Read(); err == nil && len(rec) >= 3 {
		st.Detail = rec[2]
	}
	st.Running = st.Detail == "Running"
	return st, nil
}
