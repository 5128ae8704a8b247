package serve

import (
	"crypto/sha256"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/schnitzel-stream/schnitzel/engine"
)

// fileFP is what the watcher compares between polls.
type fileFP struct {
	mod  time.Time
	size int64
}

func (a fileFP) same(b fileFP) bool { return a.size == b.size && a.mod.Equal(b.mod) }

func statFP(path string) (fileFP, error) {
	st, err := os.Stat(path)
	if err != nil {
		return fileFP{}, err
	}
	return fileFP{mod: st.ModTime(), size: st.Size()}, nil
}

// recentWrite: a file modified this recently may have been rewritten
// within one mtime tick at the same size, so its bytes are hashed even
// when mtime and size look unchanged.
const recentWrite = 2 * time.Second

// graphFiles lists the graph files of dir by name: NAME.yaml, else
// NAME.yml. Names that are not valid graph names are skipped with a
// warning (once per file).
func (s *Supervisor) graphFiles() (map[string]string, error) {
	entries, err := os.ReadDir(s.cfg.GraphsDir)
	if err != nil {
		return nil, err
	}
	files := map[string]string{}
	for _, e := range entries {
		fn := e.Name()
		if strings.HasPrefix(fn, ".") || e.IsDir() {
			continue // our temp files, editors' swap files
		}
		var name string
		switch {
		case strings.HasSuffix(fn, ".yaml"):
			name = strings.TrimSuffix(fn, ".yaml")
		case strings.HasSuffix(fn, ".yml"):
			name = strings.TrimSuffix(fn, ".yml")
		default:
			continue
		}
		if err := CheckName(name); err != nil {
			s.warnOnce(fn, "graph file ignored: not a valid graph name", "file", fn, "err", err)
			continue
		}
		if prev, ok := files[name]; ok {
			keep, skip := prev, fn
			if strings.HasSuffix(fn, ".yaml") {
				keep, skip = fn, prev
			}
			s.warnOnce(skip, "graph file ignored: both NAME.yaml and NAME.yml exist, NAME.yaml is used", "file", skip, "used", keep)
			files[name] = keep
			continue
		}
		files[name] = fn
	}
	for name, fn := range files {
		files[name] = filepath.Join(s.cfg.GraphsDir, fn)
	}
	return files, nil
}

func (s *Supervisor) warnOnce(key, msg string, args ...any) {
	s.mu.Lock()
	seen := s.warned[key]
	s.warned[key] = true
	s.mu.Unlock()
	if !seen {
		s.log.Warn(msg, args...)
	}
}

// scan brings the graphs in line with the directory: new files are
// added (and started), changed ones reloaded (an invalid new version is
// refused and the old one keeps running), removed ones stopped and
// forgotten. initial: New's first scan, which reads state.json's desired
// state and env and starts nothing.
func (s *Supervisor) scan(initial bool) {
	s.scanMu.Lock()
	defer s.scanMu.Unlock()
	files, err := s.graphFiles()
	if err != nil {
		// Running graphs are left alone: a directory that is briefly
		// unreadable (remount, permissions) is not a removal.
		s.warnOnce("\x00readdir:"+err.Error(), "cannot read the graphs directory: graphs left as they are", "dir", s.cfg.GraphsDir, "err", err)
		return
	}
	s.mu.Lock()
	var removed []*graphRec
	for name, g := range s.graphs {
		if _, ok := files[name]; !ok && !g.pending && !g.gone {
			removed = append(removed, g)
		}
	}
	s.mu.Unlock()
	for _, g := range removed {
		s.fileRemoved(g)
	}
	for _, name := range sortedKeys(files) {
		s.fileSeen(name, files[name], initial)
	}
}

func (s *Supervisor) fileRemoved(g *graphRec) {
	g.opMu.Lock()
	defer g.opMu.Unlock()
	s.mu.Lock()
	gone := g.gone || g.pending
	s.mu.Unlock()
	if gone {
		return
	}
	if _, err := os.Stat(g.path); err == nil {
		return // rewritten meanwhile
	}
	s.mu.Lock()
	s.cancelBackoffLocked(g)
	s.mu.Unlock()
	s.stopLocked(g, "graph file removed")
	s.drop(g)
	if err := s.saveState(); err != nil {
		s.log.Error("cannot write the state file", "err", err)
	}
	s.log.Info("graph file removed: graph stopped and forgotten", "graph", g.name)
	s.audit("graph.reload", g.name, "ok", "graph file removed", map[string]any{"change": "removed"})
}

// fileSeen handles one listed file: new, changed or the same.
func (s *Supervisor) fileSeen(name, path string, initial bool) {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		return
	}
	g := s.graphs[name]
	created := false
	if g == nil {
		g = s.newRecLocked(name, path)
		g.origin = "file"
		if e, ok := s.initial[name]; ok && initial {
			g.desired, g.env = e.Desired, cloneEnv(e.Env)
			if e.Origin != "" {
				g.origin = e.Origin
			}
		}
		g.opMu.Lock()
		created = true
		s.mu.Unlock()
	} else {
		s.mu.Unlock()
		g.opMu.Lock()
	}
	defer g.opMu.Unlock()
	s.mu.Lock()
	if g.gone {
		s.mu.Unlock()
		return
	}
	if !created && g.path != path {
		s.mu.Unlock()
		return // NAME.yml while NAME.yaml is the graph's (or the reverse): warned about
	}
	known, knownSum := g.fp, g.sum
	s.mu.Unlock()

	fp, err := statFP(path)
	if err != nil {
		if created {
			s.drop(g)
		}
		return // removed meanwhile: the next scan sees it
	}
	if !created && fp.same(known) && time.Since(fp.mod) > recentWrite {
		return
	}
	data, err := os.ReadFile(path)
	if err != nil {
		if created {
			s.drop(g)
		}
		if !errors.Is(err, fs.ErrNotExist) {
			s.warnOnce(path+"\x00read", "cannot read graph file", "file", path, "err", err)
		}
		return
	}
	sum := sha256.Sum256(data)
	if !created && sum == knownSum {
		s.mu.Lock()
		g.fp = fp
		s.mu.Unlock()
		return
	}
	s.mu.Lock()
	env := cloneEnv(g.env)
	s.mu.Unlock()
	plan, _, lerr := s.load(path, data, env)
	if created {
		s.added(g, data, sum, fp, plan, lerr, initial)
		return
	}
	s.changed(g, data, sum, fp, plan, lerr)
}

// added commits a new file's graph: failed when invalid, else started if
// it should run.
func (s *Supervisor) added(g *graphRec, data []byte, sum [32]byte, fp fileFP, plan *engine.Plan, lerr error, initial bool) {
	s.mu.Lock()
	g.yaml, g.sum, g.fp = slices.Clone(data), sum, fp
	g.pending = false
	g.gen = 1
	if lerr != nil {
		g.invalid = asInvalid(lerr)
		g.lastError = firstDiags(lerr)
		s.setStateLocked(g, StateFailed)
	} else {
		g.plan = plan
	}
	s.mu.Unlock()
	if lerr != nil {
		s.log.Error("graph file is invalid: not started", "graph", g.name, "err", firstDiags(lerr))
		s.audit("graph.failed", g.name, "error", firstDiags(lerr), map[string]any{"change": "added"})
	} else if !initial {
		s.log.Info("graph file added", "graph", g.name)
		s.audit("graph.reload", g.name, "ok", "graph file added", map[string]any{"change": "added", "generation": int64(1)})
	}
	if !initial {
		if err := s.saveState(); err != nil {
			s.log.Error("cannot write the state file", "err", err)
		}
	}
	if s.shouldRun(g) {
		s.startLocked(g)
	}
}

// changed reloads a graph whose file changed on disk.
func (s *Supervisor) changed(g *graphRec, data []byte, sum [32]byte, fp fileFP, plan *engine.Plan, lerr error) {
	s.mu.Lock()
	g.fp = fp
	if lerr != nil {
		// The running version (if any) keeps running; the new bytes are
		// remembered so that applying the old version again is a change.
		g.sum = sum
		reason := firstDiags(lerr)
		wasValid := g.plan != nil
		if wasValid {
			g.reloadError = reason
		} else {
			g.yaml = slices.Clone(data)
			g.invalid = asInvalid(lerr)
			g.lastError = reason
		}
		s.mu.Unlock()
		s.log.Error("changed graph file is invalid: the previous version keeps running", "graph", g.name, "err", reason)
		s.audit("graph.reload", g.name, "error", reason, map[string]any{"change": "changed"})
		return
	}
	hadRun := g.cur != nil
	g.yaml, g.sum = slices.Clone(data), sum
	g.plan, g.invalid = plan, nil
	g.gen++
	gen := g.gen
	g.reloadError, g.lastError = "", ""
	g.restarts, g.attempt = 0, 0
	s.cancelBackoffLocked(g)
	if g.cur == nil && g.state == StateFailed {
		s.setStateLocked(g, StateStopped)
	}
	s.mu.Unlock()
	var took time.Duration
	if hadRun {
		t0 := time.Now()
		s.stopLocked(g, "graph reloaded")
		if s.shouldRun(g) {
			s.startLocked(g)
		}
		took = time.Since(t0)
	} else if s.shouldRun(g) {
		s.startLocked(g)
	}
	s.log.Info("graph file changed: reloaded", "graph", g.name, "generation", gen, "reload", took.String())
	s.audit("graph.reload", g.name, "ok", "", map[string]any{"change": "changed", "generation": gen, "reload_ms": took.Milliseconds()})
}

func asInvalid(err error) *engine.InvalidError {
	var ie *engine.InvalidError
	if errors.As(err, &ie) {
		return ie
	}
	return &engine.InvalidError{}
}
