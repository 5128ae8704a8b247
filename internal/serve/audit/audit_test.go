package audit

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestAppendTailRotate(t *testing.T) {
	p := filepath.Join(t.TempDir(), "audit.jsonl")
	l, err := Open(p, 600, 3)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	for i := range 40 {
		if err := l.Append(Event{Actor: "token", Action: "graph.apply", Target: fmt.Sprint("g", i), Status: "ok"}); err != nil {
			t.Fatal(err)
		}
	}
	st, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", st.Mode().Perm())
	}
	if _, err := os.Stat(p + ".2"); err != nil {
		t.Errorf("want a second rotated file: %v", err)
	}
	if _, err := os.Stat(p + ".3"); err == nil {
		t.Errorf("max files 3 kept a fourth file")
	}
	evs, err := l.Tail(time.Time{}, 5)
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 5 || evs[4].Target != "g39" || evs[0].Target != "g35" {
		t.Fatalf("tail 5 = %+v", evs)
	}
	for _, e := range evs {
		if e.EventID == "" || e.Time().IsZero() {
			t.Errorf("event without id or ts: %+v", e)
		}
	}
	all, err := l.Tail(time.Time{}, 1000)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) < 6 || len(all) >= 40 {
		t.Errorf("rotation kept %d events of 40 in 3 files of 600 bytes", len(all))
	}
	for i := 1; i < len(all); i++ {
		if all[i].Time().Before(all[i-1].Time()) {
			t.Fatalf("not oldest first at %d", i)
		}
	}
	future, _ := l.Tail(time.Now().Add(time.Hour), 10)
	if len(future) != 0 {
		t.Errorf("since the future: %d events", len(future))
	}
}
