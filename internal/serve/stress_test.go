package serve

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/schnitzel-stream/schnitzel/internal/poll"
)

// TestConcurrentOperations: API calls on the same and on different
// graphs, racing the watcher, a tap reader and the sampler, end in a
// consistent state: what List shows is what the directory and state.json
// hold (run with -race).
func TestConcurrentOperations(t *testing.T) {
	e := newEnv(t)
	s, stop := start(t, e.config(func(c *Config) { c.WatchInterval = 5 * time.Millisecond }))
	names := []string{"a", "b", "c"}
	var wg sync.WaitGroup
	errs := make(chan error, 1000)
	for w := 0; w < 6; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 15; i++ {
				name := names[(w+i)%len(names)]
				var err error
				switch (w * i) % 6 {
				case 0, 1:
					body := strings.Replace(ticker, "0.005", fmt.Sprintf("0.00%d", 1+i%5), 1)
					_, err = s.Apply(name, []byte(body), ApplyOptions{Stopped: i%4 == 3})
				case 2:
					err = s.Stop(name, "t")
				case 3:
					err = s.Restart(name, "t")
				case 4:
					if ts, terr := s.Tap(name, "src", ""); terr == nil {
						<-ts.Events()
						ts.Close()
					}
				case 5:
					if i%3 == 0 {
						err = s.Delete(name, "t")
					} else {
						_, err = s.Get(name)
					}
				}
				if err != nil && !errors.Is(err, ErrNotFound) && !errors.Is(err, ErrNotRunning) {
					errs <- fmt.Errorf("%s: %w", name, err)
				}
				s.List()
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	poll.Until(t, wait, "no graph left starting", func() bool {
		for _, st := range s.List() {
			if st.State == StateStarting {
				return false
			}
		}
		return true
	})
	listed := map[string]string{}
	for _, st := range s.List() {
		listed[st.Name] = st.Desired
		if st.Desired == "running" && st.State != StateRunning {
			t.Errorf("%s: desired running but %s (%s)", st.Name, st.State, st.LastError)
		}
		if st.Desired == "stopped" && st.State != StateStopped {
			t.Errorf("%s: desired stopped but %s", st.Name, st.State)
		}
	}
	stop()
	for _, n := range names {
		_, err := os.Stat(filepath.Join(e.graphs, n+".yaml"))
		if _, ok := listed[n]; ok != (err == nil) {
			t.Errorf("%s: listed %v, file %v", n, ok, err)
		}
	}
	var sf stateFile
	b, err := os.ReadFile(filepath.Join(e.state, "state.json"))
	if err != nil || json.Unmarshal(b, &sf) != nil {
		t.Fatalf("state.json %s %v", b, err)
	}
	if len(sf.Graphs) != len(listed) {
		t.Errorf("state %v, listed %v", sf.Graphs, listed)
	}
	for n, d := range listed {
		if sf.Graphs[n].Desired != d {
			t.Errorf("%s: state says %q, list said %q", n, sf.Graphs[n].Desired, d)
		}
	}
	if fi, err := os.Stat(filepath.Join(e.state, "state.json")); err == nil && os.PathSeparator == '/' && fi.Mode().Perm() != 0o600 {
		t.Errorf("state.json mode %v", fi.Mode())
	}
	s.mu.Lock()
	taps := s.taps
	s.mu.Unlock()
	if taps != 0 {
		t.Errorf("%d taps still counted", taps)
	}
}
