package serve

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
)

// stateFile is StateDir/state.json: what the graphs dir alone does not say
// (which graphs are stopped, their own variables, where they came from).
// The graphs themselves are the files.
type stateFile struct {
	Version int                   `json:"version"`
	Graphs  map[string]stateEntry `json:"graphs"`
}

type stateEntry struct {
	Desired string            `json:"desired"` // running or stopped
	Env     map[string]string `json:"env,omitempty"`
	Origin  string            `json:"origin,omitempty"`
}

const (
	desiredRunning = "running"
	desiredStopped = "stopped"
)

func readState(path string) (map[string]stateEntry, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return map[string]stateEntry{}, nil
	}
	if err != nil {
		return nil, err
	}
	var sf stateFile
	if err := json.Unmarshal(b, &sf); err != nil {
		// Refuse rather than guess: starting with an empty state would
		// start every graph an operator had stopped.
		return nil, fmt.Errorf("state file %s is corrupt (%v): fix or remove it", path, err)
	}
	out := map[string]stateEntry{}
	for name, e := range sf.Graphs {
		if CheckName(name) != nil {
			continue
		}
		if e.Desired != desiredStopped {
			e.Desired = desiredRunning
		}
		out[name] = e
	}
	return out, nil
}

// saveState writes the desired state of every committed graph. Writes are
// serialised (stateMu) and each writes the whole current picture, so the
// last one on disk is the newest.
func (s *Supervisor) saveState() error {
	s.stateMu.Lock()
	defer s.stateMu.Unlock()
	sf := stateFile{Version: 1, Graphs: map[string]stateEntry{}}
	s.mu.Lock()
	for name, g := range s.graphs {
		if g.pending || g.gone {
			continue
		}
		sf.Graphs[name] = stateEntry{Desired: g.desired, Env: g.env, Origin: g.origin}
	}
	s.mu.Unlock()
	b, err := json.MarshalIndent(sf, "", "  ")
	if err != nil {
		return err
	}
	if err := writeAtomic(filepath.Join(s.cfg.StateDir, "state.json"), append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("state file: %w", err)
	}
	return nil
}

func envEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func cloneEnv(m map[string]string) map[string]string {
	if len(m) == 0 {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
