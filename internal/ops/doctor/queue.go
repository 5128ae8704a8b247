package doctor

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/schnitzel-stream/schnitzel/internal/graph"
	"github.com/schnitzel-stream/schnitzel/internal/queue"
)

// queueChecks checks every durable SQLite queue file the graph's nodes
// name (plugins of durable_sqlite), at the path the run will open: the
// plan's config, interpolated by the same loader.
func queueChecks(o Options, plan *graph.Plan) []Check {
	var out []Check
	seen := map[string]bool{}
	for _, n := range plan.Nodes {
		if !strings.Contains(strings.ToLower(n.Entry.Info.Name), "durable_sqlite") {
			continue
		}
		raw, _ := n.Config.Get("path")
		s, _ := raw.(string)
		if s == "" {
			continue
		}
		p := resolve(o.WorkDir, s)
		if seen[p] {
			continue
		}
		seen[p] = true
		out = append(out, sqliteCheck("queue."+n.ID, p, o.QueueCheck == "quick"))
	}
	return out
}

func sqliteCheck(name, path string, quick bool) Check {
	pragma := "integrity_check"
	if quick {
		pragma = "quick_check"
	}
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		// The queue creates the file and its missing directories; that
		// works only if the nearest existing directory is writable (else
		// the run fails with SQLite's bare "unable to open database file").
		dir := existingAncestor(filepath.Dir(path))
		if err := probeWrite(dir); err != nil {
			return Check{Name: name, Status: Fail,
				Message: fmt.Sprintf("%s does not exist and cannot be created: %s is not writable (%v)", path, dir, err),
				Fix:     "run as the account that owns " + dir + ", give it the directory, or point the queue path elsewhere"}
		}
		return Check{Name: name, Status: OK, Message: path + " does not exist yet (created on the first run; " + dir + " is writable)"}
	}
	problems, err := integrityCheck(path, quick)
	fix := "stop the service, move " + path + " aside (recover rows with `sqlite3 FILE .recover`), then start again: an empty queue is created"
	if err != nil {
		return Check{Name: name, Status: Fail, Message: err.Error(), Fix: fix}
	}
	if len(problems) > 0 {
		if len(problems) > 3 {
			problems = append(problems[:3], fmt.Sprintf("... %d more", len(problems)-3))
		}
		return Check{Name: name, Status: Fail, Message: fmt.Sprintf("%s fails %s: %s", path, pragma, strings.Join(problems, "; ")), Fix: fix}
	}
	return Check{Name: name, Status: OK, Message: path + " passes " + pragma}
}

// integrityCheck opens the queue read-only, as the queue library opens it
// for admin commands, and returns the complaints of SQLite's integrity or
// quick check (none when it says "ok").
func integrityCheck(path string, quick bool) ([]string, error) {
	q, err := queue.Open(path, queue.Options{ReadOnly: true})
	if err != nil {
		return nil, err
	}
	defer q.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var found []string
	if quick {
		found, err = q.QuickCheck(ctx)
	} else {
		found, err = q.Check(ctx)
	}
	if err != nil {
		return nil, err
	}
	var problems []string
	for _, s := range found {
		if s != "ok" {
			problems = append(problems, s)
		}
	}
	return problems, nil
}

// existingAncestor returns dir or its nearest parent that exists.
func existingAncestor(dir string) string {
	for {
		if _, err := os.Stat(dir); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return dir
		}
		dir = parent
	}
}
