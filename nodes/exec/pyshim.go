package execnodes

import (
	"bytes"
	"context"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/schnitzel-stream/schnitzel/internal/childproc"
	"github.com/schnitzel-stream/schnitzel/packet"
	"github.com/schnitzel-stream/schnitzel/plugin"
)

//go:embed pyshim/shim.py
var shimSource []byte

// PythonEnv names the interpreter for Python classes (default python3 in PATH).
const PythonEnv = "SCHNITZEL_PYTHON"

// checkTimeout bounds the import check at validation (a module that
// hangs at import).
const checkTimeout = 30 * time.Second

// python finds the interpreter.
func python() (string, error) {
	if p := strings.TrimSpace(os.Getenv(PythonEnv)); p != "" {
		return exec.LookPath(p)
	}
	p, err := exec.LookPath("python3")
	if err != nil {
		return "", fmt.Errorf("python3 is not in PATH (set %s to an interpreter)", PythonEnv)
	}
	return p, nil
}

var (
	shimOnce sync.Once
	shimPath string
	shimErr  error
)

// shimFile writes the embedded shim once per process to a cache directory
// named by its hash (so two builds never share a stale copy) and returns
// its path. Written to a temporary name and renamed: a concurrent run
// never sees half a file.
func shimFile() (string, error) {
	shimOnce.Do(func() {
		base, err := os.UserCacheDir()
		if err != nil {
			base = os.TempDir()
		}
		sum := sha256.Sum256(shimSource)
		dir := filepath.Join(base, "schnitzel", "pyshim-"+hex.EncodeToString(sum[:6]))
		p := filepath.Join(dir, "shim.py")
		if b, err := os.ReadFile(p); err == nil && bytes.Equal(b, shimSource) {
			shimPath = p
			return
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			shimErr = fmt.Errorf("python shim: %w", err)
			return
		}
		tmp, err := os.CreateTemp(dir, "shim-*.py")
		if err != nil {
			shimErr = fmt.Errorf("python shim: %w", err)
			return
		}
		_, werr := tmp.Write(shimSource)
		cerr := tmp.Close()
		if err := errors.Join(werr, cerr); err != nil {
			_ = os.Remove(tmp.Name())
			shimErr = fmt.Errorf("python shim: %w", err)
			return
		}
		if err := os.Rename(tmp.Name(), p); err != nil {
			_ = os.Remove(tmp.Name())
			shimErr = fmt.Errorf("python shim: %w", err)
			return
		}
		shimPath = p
	})
	return shimPath, shimErr
}

// pythonPath is PYTHONPATH plus the graph's directory, where a graph's
// own modules (mynodes.py beside graph.yaml) live.
func pythonPath(dir string) string {
	parts := []string{}
	if pp := os.Getenv("PYTHONPATH"); pp != "" {
		parts = append(parts, pp)
	}
	if dir != "" {
		if a, err := filepath.Abs(dir); err == nil {
			parts = append(parts, a)
		}
	}
	return strings.Join(parts, string(os.PathListSeparator))
}

// classInfo is what `shim.py --check` prints.
type classInfo struct {
	OK          bool     `json:"ok"`
	Error       string   `json:"error"`
	Traceback   []string `json:"traceback"`
	Role        string   `json:"role"`
	InputKinds  []string `json:"input_kinds"`
	OutputKinds []string `json:"output_kinds"`
	Doc         string   `json:"doc"`
}

// pythonFallback resolves an allowed, unregistered `module:Class` to the
// shim: it imports the class once (the validation's import check) and
// returns an entry that runs it. Names under schnitzel_stream. are ours:
// one that is not registered is a typo, not a Python class, and keeps the
// usual "not registered (did you mean ...)" message.
func pythonFallback(name, dir string) (*plugin.Entry, error) {
	module, _, _ := strings.Cut(name, ":")
	if module == "schnitzel_stream" || strings.HasPrefix(module, "schnitzel_stream.") {
		return nil, nil
	}
	py, err := python()
	if err != nil {
		return nil, fmt.Errorf("not registered in this build, and it cannot be loaded as a Python class: %w", err)
	}
	shim, err := shimFile()
	if err != nil {
		return nil, err
	}
	info, err := checkClass(py, shim, name, dir)
	if err != nil {
		return nil, err
	}
	// Not cached: a long-running `schnitzel serve` re-validating a graph
	// must see the module as it is now.
	return pythonEntry(name, py, shim, info), nil
}

func checkClass(py, shim, name, dir string) (*classInfo, error) {
	ctx, cancel := context.WithTimeout(context.Background(), checkTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, py, shim, "--check", name)
	cmd.Env = append(os.Environ(), "PYTHONPATH="+pythonPath(dir), "PYTHONDONTWRITEBYTECODE=1")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	childproc.SetGroup(cmd)
	cmd.Cancel = func() error { childproc.KillGroup(cmd); return nil }
	runErr := cmd.Run()
	if ctx.Err() != nil {
		return nil, fmt.Errorf("importing the Python class took longer than %s (%s)", checkTimeout, py)
	}
	var info classInfo
	line, _, _ := bytes.Cut(bytes.TrimSpace(stdout.Bytes()), []byte("\n"))
	if err := json.Unmarshal(line, &info); err != nil {
		msg := strings.TrimSpace(stderr.String())
		if len(msg) > 500 {
			msg = msg[len(msg)-500:]
		}
		return nil, fmt.Errorf("the Python import check failed (%v): %s", runErr, msg)
	}
	if !info.OK {
		msg := "cannot load the Python class: " + info.Error
		if len(info.Traceback) > 0 {
			msg += " (at " + strings.Join(info.Traceback, " <- ") + ")"
		}
		return nil, errors.New(msg)
	}
	return &info, nil
}

func pythonEntry(name, py, shim string, info *classInfo) *plugin.Entry {
	role := plugin.RoleNode
	if info.Role == "source" {
		role = plugin.RoleSource
	}
	summary := "Python class " + name + ", run by the Python shim (nodes/exec)."
	if info.Doc != "" {
		summary += " " + info.Doc
	}
	in := plugin.Info{
		Name: name, Role: role, In: info.InputKinds, Out: info.OutputKinds,
		Summary: summary, Stability: plugin.Experimental, Metrics: metricSpecs,
	}
	if role == plugin.RoleSource {
		in.OutProfile = plugin.ProfileJSON
	} else {
		in.InProfile = plugin.ProfileJSON
	}
	return plugin.NewRawEntry(in, func(cfg *packet.Map, env plugin.Env) (any, error) {
		pc := defaultProcess()
		env2 := []string{"PYTHONPATH=" + pythonPath(env.GraphDir), "PYTHONUNBUFFERED=1", "PYTHONDONTWRITEBYTECODE=1"}
		s := pc.settings([]string{py, shim, "--run", name}, env2, "", cfg)
		s.name = name
		r := newRunner(s, env)
		if role == plugin.RoleSource {
			return &source{r: r}, nil
		}
		return &node{r: r}, nil
	})
}
