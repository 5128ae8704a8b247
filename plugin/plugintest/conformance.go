package plugintest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/schnitzel-stream/schnitzel/packet"
	"github.com/schnitzel-stream/schnitzel/plugin"
)

// Fixture makes one node buildable in Conformance without network or
// devices it cannot have.
type Fixture struct {
	// Config holds the keys the node needs (its required keys, a loopback
	// URL); nil is the empty config. Relative paths land in the node's own
	// t.TempDir(), which is the working directory while it is tested.
	Config *packet.Map
	// Input is handed to a node or sink between Start and Close, so that
	// what it acquires on its first packet (connections, files) is
	// released by Close too. Process may drop a packet (plugin.DropPacket)
	// but not fail.
	Input []*packet.Packet
	// StartFails, when set, is a config that decodes but makes Start fail
	// (a path under a regular file): Close must then still work, twice,
	// and release whatever the failed Start had acquired.
	StartFails *packet.Map
	// Exempt skips the node, saying why (it needs what a test cannot
	// provide); the reason is logged.
	Exempt string
}

// Deadlines of the suite: generous, since a failing node hangs rather than
// being slow. Variables, so that the suite's own tests can wait less for
// the broken nodes they check it against.
var (
	lifeDeadline = 10 * time.Second // Start, Close, Process
	stopDeadline = 5 * time.Second  // a source's Run after its ctx is cancelled
	leakDeadline = 10 * time.Second // goroutines to end after Close
	runWindow    = 200 * time.Millisecond
)

// Conformance checks every node in reg against the node contract
// (plugin/node.go), one subtest per node:
//
//   - the spec has a Summary and every config key a doc;
//   - the fixture's config decodes without errors or warnings, and so does
//     the config that the docs show (every Info.Fields default, the
//     fixture's keys on top), to the same value;
//   - the node builds, and the value implements what its role needs
//     (Source; Processor or BatchProcessor);
//   - Metrics reports exactly the metrics the spec declares, in order,
//     before Start, while running and after Close;
//   - Close works on a node that never started (the runtime closes every
//     constructed node, even after a failed Start), and twice;
//   - Start, Run (sources: it returns promptly once its ctx is
//     cancelled) or the fixture's Input, then Close twice: the second
//     returns nil or the first's error;
//   - a source whose ctx is already cancelled emits nothing (it checks
//     ctx before reading an item it would throw away); Stopping, where a
//     node has it, returns at once;
//   - Close with a ctx already past its deadline returns, and still
//     releases what the node holds;
//   - Metrics can be read while the node runs (-race finds counters that
//     are not atomics);
//   - with Fixture.StartFails, Close works after the failed Start;
//   - no goroutine the node started outlives Close.
//
// fixtures is keyed by plugin name; a fixture for a name reg does not hold
// fails the test, so the table cannot go stale. Each node runs in its own
// t.TempDir() working directory (t.Chdir), so the suite cannot run in
// parallel with other tests of the package.
func Conformance(t *testing.T, reg *plugin.Registry, fixtures map[string]Fixture) {
	t.Helper()
	for name := range fixtures {
		if _, ok := reg.Lookup(name); !ok {
			t.Errorf("fixture for %s, which is not registered", name)
		}
	}
	for _, e := range reg.Entries() {
		t.Run(shortName(e.Name), func(t *testing.T) {
			f := fixtures[e.Name]
			if f.Exempt != "" {
				t.Skipf("exempt: %s", f.Exempt)
			}
			t.Chdir(t.TempDir())
			conform(t, e, f)
		})
	}
}

func shortName(n string) string {
	_, class, _ := strings.Cut(n, ":")
	return class
}

func conform(t testing.TB, e *plugin.Entry, f Fixture) {
	// docs/nodes.md is generated from these: a blank is a hole in it
	if strings.TrimSpace(e.Summary) == "" {
		t.Errorf("spec has no Summary")
	}
	for _, fd := range e.Fields {
		if strings.TrimSpace(fd.Doc) == "" {
			t.Errorf("config key %s has no doc tag", fd.Key)
		}
	}
	cfg := f.Config
	if cfg == nil {
		cfg = packet.NewMap(0)
	}
	dec := decodeClean(t, e, "fixture config", cfg)
	docs, err := docsConfig(e, cfg)
	if err != nil {
		t.Fatalf("docs defaults: %v", err)
	}
	if again := decodeClean(t, e, "docs defaults", docs); !reflect.DeepEqual(dec, again) {
		t.Errorf("the defaults the docs show decode to another config:\n got %#v\nwant %#v", again, dec)
	}

	// Close before Start, as after a failed Start of another node.
	cold := build(t, e, dec)
	closeTwice(t, "never started", cold, false)

	if f.StartFails != nil {
		startFails(t, e, f.StartFails)
	}
	if e.Role == plugin.RoleSource {
		cancelledRun(t, e, dec)
	}

	leaks := goleak.IgnoreCurrent()
	n := build(t, e, dec)
	checkMetrics(t, e, n, "before Start")
	ctx, cancel := context.WithTimeout(context.Background(), lifeDeadline)
	defer cancel()
	if s, ok := n.(plugin.Starter); ok {
		if err := s.Start(ctx); err != nil {
			closeTwice(t, "after a failed Start", n, true)
			t.Fatalf("start: %v", err)
		}
	}
	if e.Role == plugin.RoleSource {
		runAndCancel(t, e, n.(plugin.Source))
	} else {
		if len(f.Input) > 0 {
			feed(t, ctx, e, n, f.Input)
		}
		stopping(t, n) // a graceful stop, as the runtime begins one
	}
	closeTwice(t, "started", n, false)
	checkMetrics(t, e, n, "after Close")
	noLeaks(t, leaks)

	expiredClose(t, e, dec, f)
}

// expiredClose starts a node, gives it its input, and closes it with a ctx
// already past its deadline, as after a stop that outlived --stop-timeout:
// Close may give up on flushing (and say so), but it must return and
// release what the node holds.
func expiredClose(t testing.TB, e *plugin.Entry, dec any, f Fixture) {
	t.Helper()
	leaks := goleak.IgnoreCurrent()
	n := build(t, e, dec)
	ctx, cancel := context.WithTimeout(context.Background(), lifeDeadline)
	defer cancel()
	if s, ok := n.(plugin.Starter); ok {
		if err := s.Start(ctx); err != nil {
			t.Fatalf("start: %v", err)
		}
	}
	if e.Role != plugin.RoleSource && len(f.Input) > 0 {
		feed(t, ctx, e, n, f.Input)
	}
	if c, ok := n.(plugin.Closer); ok {
		expired, stop := context.WithCancel(context.Background())
		stop()
		for i := range 2 {
			callWithin(t, fmt.Sprintf("close #%d with an expired ctx", i+1), func() error { return c.Close(expired) })
		}
	}
	noLeaks(t, leaks)
}

func startFails(t testing.TB, e *plugin.Entry, cfg *packet.Map) {
	t.Helper()
	leaks := goleak.IgnoreCurrent()
	n := build(t, e, decodeClean(t, e, "StartFails config", cfg))
	s, ok := n.(plugin.Starter)
	if !ok {
		t.Fatalf("StartFails: %T has no Start", n)
	}
	ctx, cancel := context.WithTimeout(context.Background(), lifeDeadline)
	defer cancel()
	if err := callWithin(t, "start (StartFails)", func() error { return s.Start(ctx) }); err == nil {
		t.Errorf("StartFails: Start succeeded")
	}
	closeTwice(t, "after a failed Start", n, true)
	noLeaks(t, leaks)
}

// cancelledRun runs a started source with a ctx cancelled beforehand.
func cancelledRun(t testing.TB, e *plugin.Entry, dec any) {
	t.Helper()
	n := build(t, e, dec)
	defer closeTwice(t, "after a cancelled Run", n, false)
	ctx, cancel := context.WithTimeout(context.Background(), lifeDeadline)
	defer cancel()
	if s, ok := n.(plugin.Starter); ok {
		if err := s.Start(ctx); err != nil {
			t.Fatalf("start: %v", err)
		}
	}
	runCtx, stop := context.WithCancel(ctx)
	stop()
	out := &sink{first: make(chan struct{})}
	err := callWithin(t, "run with a cancelled ctx", func() error { return n.(plugin.Source).Run(runCtx, out) })
	if err != nil && !errors.Is(err, plugin.ErrStop) && !errors.Is(err, context.Canceled) {
		t.Errorf("run with a cancelled ctx: %v", err)
	}
	if k := out.n.Load(); k > 0 {
		t.Errorf("run with a cancelled ctx emitted %d packets: check ctx before reading the next item", k)
	}
}

func decodeClean(t testing.TB, e *plugin.Entry, what string, cfg *packet.Map) any {
	t.Helper()
	dec, warns, errs := e.Decode(cfg)
	for _, w := range warns {
		t.Errorf("%s: warning %v", what, w)
	}
	if len(errs) > 0 {
		t.Fatalf("%s: %v", what, errors.Join(fieldErrs(errs)...))
	}
	return dec
}

func fieldErrs(fes []*plugin.FieldError) []error {
	out := make([]error, len(fes))
	for i, fe := range fes {
		out[i] = fe
	}
	return out
}

// docsConfig is the config a reader of docs/nodes.md would write: every
// documented default as the JSON the docs print, then cfg's keys.
func docsConfig(e *plugin.Entry, cfg *packet.Map) (*packet.Map, error) {
	m := packet.NewMap(len(e.Fields))
	for _, f := range e.Fields {
		if f.Required || f.Default == nil {
			continue
		}
		b, err := json.Marshal(f.Default)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", f.Key, err)
		}
		v, err := packet.DecodeJSON(b)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", f.Key, err)
		}
		at := m
		path := strings.Split(f.Key, ".") // keys of nested config structs
		for _, k := range path[:len(path)-1] {
			sub, _ := at.Get(k)
			next, ok := sub.(*packet.Map)
			if !ok {
				next = packet.NewMap(1)
				at.Set(k, next)
			}
			at = next
		}
		at.Set(path[len(path)-1], v)
	}
	for _, kv := range cfg.Entries() {
		m.Set(kv.Key, kv.Value)
	}
	return m, nil
}

func build(t testing.TB, e *plugin.Entry, dec any) any {
	t.Helper()
	kind := string(e.Role) // the graph kind each role is written with
	env := plugin.Env{NodeID: "conf", Kind: kind, Plugin: e.Name,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Stdout: io.Discard}
	n, err := e.Build(dec, env)
	if err != nil {
		t.Fatalf("build: %v", err)
	}
	switch e.Role {
	case plugin.RoleSource:
		if _, ok := n.(plugin.Source); !ok {
			t.Fatalf("role source, but %T does not implement plugin.Source", n)
		}
	default:
		_, p := n.(plugin.Processor)
		_, bp := n.(plugin.BatchProcessor)
		if !p && !bp {
			t.Fatalf("role %s, but %T implements neither plugin.Processor nor plugin.BatchProcessor", e.Role, n)
		}
	}
	return n
}

func checkMetrics(t testing.TB, e *plugin.Entry, n any, when string) {
	t.Helper()
	var want, got []string
	for _, m := range e.Metrics {
		want = append(want, m.Name)
	}
	if m, ok := n.(plugin.Metrics); ok {
		for _, v := range m.Metrics() {
			got = append(got, v.Name)
		}
	}
	if !slices.Equal(got, want) {
		t.Errorf("metrics %s: the node reports %v, the spec declares %v", when, got, want)
	}
}

// closeTwice calls Close twice; the second must return nil or the first's
// error. Unless failedOK, the first must return nil.
func closeTwice(t testing.TB, when string, n any, failedOK bool) {
	t.Helper()
	c, ok := n.(plugin.Closer)
	if !ok {
		return
	}
	var errs [2]error
	for i := range errs {
		ctx, cancel := context.WithTimeout(context.Background(), lifeDeadline)
		errs[i] = callWithin(t, fmt.Sprintf("close #%d (%s)", i+1, when), func() error { return c.Close(ctx) })
		cancel()
	}
	if errs[0] != nil && !failedOK {
		t.Errorf("close (%s): %v", when, errs[0])
	}
	if errs[1] != nil && (errs[0] == nil || errs[1].Error() != errs[0].Error()) {
		t.Errorf("second close (%s): %v (first: %v)", when, errs[1], errs[0])
	}
}

// callWithin runs fn, failing the test if it panics or outlives
// lifeDeadline (the node ignores its ctx).
func callWithin(t testing.TB, what string, fn func() error) error {
	t.Helper()
	done := make(chan error, 1)
	panicked := make(chan any, 1)
	go func() {
		defer func() {
			if r := recover(); r != nil {
				panicked <- r
			}
		}()
		done <- fn()
	}()
	select {
	case err := <-done:
		return err
	case r := <-panicked:
		t.Errorf("%s: panic: %v", what, r)
		return fmt.Errorf("panic: %v", r)
	case <-time.After(lifeDeadline + time.Second):
		t.Fatalf("%s: did not return within %v", what, lifeDeadline)
		return nil
	}
}

// sink is an Emitter that counts and discards, safe from any goroutine
// (Flusher nodes emit from their own).
type sink struct {
	n     atomic.Int64
	first chan struct{}
	once  sync.Once
}

func (s *sink) Emit(p *packet.Packet) error { return s.EmitPort("", p) }

func (s *sink) EmitPort(string, *packet.Packet) error {
	s.n.Add(1)
	s.once.Do(func() { close(s.first) })
	return nil
}

// runAndCancel runs a source, lets it emit or block in what it waits on
// (a reconnect backoff, a poll), then cancels its ctx: Run must return
// within stopDeadline. A source that ends on its own passes too.
func runAndCancel(t testing.TB, e *plugin.Entry, src plugin.Source) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := &sink{first: make(chan struct{})}
	done := make(chan error, 1)
	go func() { done <- src.Run(ctx, out) }()
	// The window only gives Run time to get going; a node that passes
	// passes whatever the window, so the test does not depend on timing.
	window := time.NewTimer(runWindow)
	defer window.Stop()
	select {
	case err := <-done:
		if err != nil && !errors.Is(err, plugin.ErrStop) {
			t.Errorf("run ended on its own with %v", err)
		}
		return
	case <-out.first:
	case <-window.C:
	}
	checkMetrics(t, e, src, "while running")
	stopping(t, src)
	cancel()
	t.Logf("run: cancelled after %d packets", out.n.Load())
	select {
	case err := <-done:
		if err != nil && !errors.Is(err, plugin.ErrStop) && !errors.Is(err, context.Canceled) {
			t.Errorf("run after cancel: %v", err)
		}
	case <-time.After(stopDeadline):
		t.Fatalf("run did not return within %v of its ctx being cancelled (emitted %d)", stopDeadline, out.n.Load())
	}
}

// stopping calls Stopping where the node has it: it must not block.
func stopping(t testing.TB, n any) {
	t.Helper()
	if s, ok := n.(plugin.Stopper); ok {
		callWithin(t, "Stopping", func() error { s.Stopping(); return nil })
	}
}

func feed(t testing.TB, ctx context.Context, e *plugin.Entry, n any, in []*packet.Packet) {
	t.Helper()
	out := &sink{first: make(chan struct{})}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	defer wg.Wait()
	defer close(stop)
	wg.Go(func() { // the runtime reads metrics from another goroutine
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for {
			if m, ok := n.(plugin.Metrics); ok {
				m.Metrics()
			}
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	})
	checkMetrics(t, e, n, "while processing")
	err := callWithin(t, "process", func() error {
		if err := processAll(ctx, n, out, in); err != nil {
			return err
		}
		if f, ok := n.(plugin.Flusher); ok {
			return f.Flush(ctx, out)
		}
		return nil
	})
	var pe *plugin.PacketError
	switch {
	case errors.As(err, &pe):
		t.Logf("process: a packet was dropped: %v", err)
	case err != nil:
		t.Errorf("process: %v", err)
	}
	t.Logf("process: %d packets in, %d out", len(in), out.n.Load())
}

// noLeaks waits for the goroutines started since leaks was taken to end;
// each goleak.Find retries for a short while, so this polls.
func noLeaks(t testing.TB, leaks goleak.Option) {
	t.Helper()
	deadline := time.Now().Add(leakDeadline)
	for {
		err := goleak.Find(leaks)
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("goroutines outlive Close: %v", err)
			return
		}
	}
}
