package doctor

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	_ "modernc.org/sqlite" // pure-Go SQLite driver ("sqlite")
)

// queueChecks runs PRAGMA integrity_check on every durable SQLite queue file
// the graph names (nodes whose plugin contains durable_sqlite).
func queueChecks(o Options, g graphScan) []Check {
	var out []Check
	seen := map[string]bool{}
	for _, n := range g.Nodes {
		if !strings.Contains(strings.ToLower(n.Plugin), "durable_sqlite") {
			continue
		}
		raw, _ := n.Config["path"].(string)
		if raw == "" {
			continue
		}
		p := resolve(o.WorkDir, interpolate(raw, o.Getenv))
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
	problems, err := integrityCheck(path, pragma)
	fix := "stop the service, move " + path + " aside (recover rows with `sqlite3 FILE .recover`), then start again: an empty queue is created"
	if err != nil {
		return Check{Name: name, Status: Fail, Message: fmt.Sprintf("%s: %v", path, err), Fix: fix}
	}
	if len(problems) > 0 {
		if len(problems) > 3 {
			problems = append(problems[:3], fmt.Sprintf("... %d more", len(problems)-3))
		}
		return Check{Name: name, Status: Fail, Message: fmt.Sprintf("%s fails %s: %s", path, pragma, strings.Join(problems, "; ")), Fix: fix}
	}
	return Check{Name: name, Status: OK, Message: path + " passes " + pragma}
}

// integrityCheck opens the file read-only and returns the complaints of
// PRAGMA pragma (integrity_check or quick_check; none when it says "ok").
func integrityCheck(path, pragma string) ([]string, error) {
	dsn := "file:" + (&url.URL{Path: path}).EscapedPath() + "?mode=ro&_pragma=busy_timeout(5000)"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	rows, err := db.QueryContext(ctx, "PRAGMA "+pragma)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var problems []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, err
		}
		if s != "ok" {
			problems = append(problems, s)
		}
	}
	return problems, rows.Err()
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
