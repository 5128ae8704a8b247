//go:build !windows

package test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/cdproto/heapprofiler"
	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/schnitzel-stream/schnitzel/internal/poll"
	"github.com/schnitzel-stream/schnitzel/internal/queue"
	"github.com/schnitzel-stream/schnitzel/packet"
)

// The console's test ids (web/src): one place to change when the markup
// does.
const (
	selGraphRow    = `[data-testid="graph-row"]`
	selLoginForm   = `[data-testid="login-form"]`
	selLoginToken  = `[data-testid="login-token"]`
	selLoginError  = `[data-testid="login-error"]`
	selNodeCard    = `[data-testid="node-card"]`
	selTapRow      = `[data-testid="tap-row"]`
	selConfirmOK   = `[data-testid="confirm-ok"]`
	selBanner      = `[data-testid="conn-banner"]`
	selAuditRow    = `[data-testid="audit-row"]`
	selQueueRow    = `[data-testid="queue-row"]`
	selEditorSave  = `[data-testid="editor-save"]`
	selLintError   = `.cm-lintRange-error`
	selEditorLines = `.cm-content .cm-line`
)

// findChromium is the browser the console tests drive: $SCHNITZEL_CHROMIUM,
// else Debian's chromium (CI installs it), else a Chrome on PATH.
func findChromium() string {
	if p := os.Getenv("SCHNITZEL_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"/usr/bin/chromium", "chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// browser is one headless Chromium on the console, with what it logged.
type browser struct {
	t     *testing.T
	ctx   context.Context
	shots string
	n     int
	step  string

	mu       sync.Mutex
	errs     []string // console errors and exceptions, with the step they happened in
	lenient  atomic.Bool
	requests atomic.Int64 // requests to /api/ (the no-loop check)
}

func newBrowser(t *testing.T, shots string) *browser {
	t.Helper()
	exe := findChromium()
	if exe == "" {
		t.Skip("no chromium found (apt-get install chromium, or set SCHNITZEL_CHROMIUM): the console's browser tests need it; CI installs it")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(exe),
		chromedp.WindowSize(1280, 800),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("lang", "en-US"),
	)
	if os.Geteuid() == 0 {
		opts = append(opts, chromedp.NoSandbox) // Chromium refuses its sandbox as root (CI containers)
	}
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	// chromedp v0.14 logs newer protocol events it does not know
	// (DOM.topLayerElementsUpdated, from <dialog>) as errors: noise.
	errorf := func(format string, args ...any) {
		if msg := fmt.Sprintf(format, args...); !strings.Contains(msg, "unhandled node event") {
			t.Logf("chromedp: %s", msg)
		}
	}
	ctx, cancelB := chromedp.NewContext(actx, chromedp.WithLogf(t.Logf), chromedp.WithErrorf(errorf))
	t.Cleanup(func() { cancelB(); cancelA() })
	b := &browser{t: t, ctx: ctx, shots: shots}
	chromedp.ListenTarget(ctx, func(ev any) {
		switch ev := ev.(type) {
		case *runtime.EventConsoleAPICalled:
			if ev.Type == runtime.APITypeError || ev.Type == runtime.APITypeAssert {
				var parts []string
				for _, a := range ev.Args {
					if a.Value != nil {
						parts = append(parts, string(a.Value))
					} else {
						parts = append(parts, a.Description)
					}
				}
				b.logError("console."+string(ev.Type)+": "+strings.Join(parts, " "), false)
			}
		case *runtime.EventExceptionThrown:
			d := ev.ExceptionDetails
			msg := d.Text
			if d.Exception != nil && d.Exception.Description != "" {
				msg += " " + d.Exception.Description
			}
			b.logError(fmt.Sprintf("exception at %s:%d: %s", d.URL, d.LineNumber+1, msg), true)
		case *network.EventRequestWillBeSent:
			if strings.Contains(ev.Request.URL, "/api/") {
				b.requests.Add(1)
			}
		case *page.EventJavascriptDialogOpening:
			// The console uses its own dialogs; a native one (but the
			// unsaved-changes prompt) would block the page: note it and
			// accept it.
			if ev.Type != page.DialogTypeBeforeunload {
				b.logError("native dialog opened: "+ev.Message, false)
			}
			go func() { _ = chromedp.Run(ctx, page.HandleJavaScriptDialog(true)) }()
		}
	})
	if err := chromedp.Run(ctx, network.Enable(), runtime.Enable(), page.Enable()); err != nil {
		t.Fatalf("starting %s: %v", exe, err)
	}
	var ver string
	_ = chromedp.Run(ctx, chromedp.Evaluate(`navigator.userAgent`, &ver))
	t.Logf("browser: %s (%s)", exe, ver)
	return b
}

// logError records a console error; in lenient steps (the server is
// gone on purpose) only exceptions count.
func (b *browser) logError(msg string, exception bool) {
	if b.lenient.Load() && !exception {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.errs = append(b.errs, "["+b.step+"] "+msg)
}

// do runs actions as one step, failing the test with the step's name.
func (b *browser) do(what string, actions ...chromedp.Action) {
	b.t.Helper()
	b.step = what
	ctx, cancel := context.WithTimeout(b.ctx, 40*time.Second)
	defer cancel()
	if err := chromedp.Run(ctx, actions...); err != nil {
		b.shot("failed-" + what)
		var url string
		_ = chromedp.Run(b.ctx, chromedp.Location(&url))
		b.t.Fatalf("%s: %v (page %s)", what, err, url)
	}
}

// check is do for a condition whose failure does not stop the flow.
func (b *browser) check(what string, actions ...chromedp.Action) {
	b.t.Helper()
	b.step = what
	ctx, cancel := context.WithTimeout(b.ctx, 40*time.Second)
	defer cancel()
	if err := chromedp.Run(ctx, actions...); err != nil {
		b.t.Errorf("%s: %v", what, err)
		b.shot("failed-" + what)
	}
}

// shot saves a full-page PNG screenshot and logs its path.
func (b *browser) shot(name string) {
	b.t.Helper()
	b.n++
	var png []byte
	ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
	defer cancel()
	if err := chromedp.Run(ctx, chromedp.FullScreenshot(&png, 100)); err != nil {
		b.t.Errorf("screenshot %s: %v", name, err)
		return
	}
	p := filepath.Join(b.shots, fmt.Sprintf("%02d-%s.png", b.n, strings.ReplaceAll(name, " ", "-")))
	if err := os.WriteFile(p, png, 0o644); err != nil {
		b.t.Fatal(err)
	}
	b.t.Logf("screenshot: %s", p)
}

// waitJS polls a JavaScript expression in the page until it is truthy.
func waitJS(expr string) chromedp.Action { return waitJSFor(expr, 30*time.Second) }

func waitJSFor(expr string, d time.Duration) chromedp.Action {
	var ok bool
	return chromedp.Poll(expr, &ok, chromedp.WithPollingInterval(100*time.Millisecond), chromedp.WithPollingTimeout(d))
}

func count(sel string) string {
	return fmt.Sprintf(`document.querySelectorAll(%q).length`, sel)
}

// setEditor replaces the CodeMirror document: select all, then insert the
// text as one input (no key-by-key auto-indent).
func setEditor(text string) chromedp.Action {
	return chromedp.Tasks{
		chromedp.Click(`.cm-content`, chromedp.ByQuery),
		chromedp.KeyEvent("a", chromedp.KeyModifiers(input.ModifierCtrl)),
		chromedp.KeyEvent(kb.Delete),
		input.InsertText(text),
	}
}

func consoleTicker(interval float64) string {
	return fmt.Sprintf(`version: 2
nodes:
  - id: src
    kind: source
    plugin: schnitzel_stream.nodes.dev:TickerSource
    config: {interval_sec: %g}
  - id: mid
    plugin: schnitzel_stream.nodes.dev:Identity
  - id: out
    kind: sink
    plugin: schnitzel_stream.nodes.dev:Identity
edges:
  - {src: src, dst: mid}
  - {src: mid, dst: out}
`, interval)
}

// bigGraph is chains pipelines of length nodes each (a source, then
// Identity nodes, the last a sink): 20 cameras of 25 stages is 500 nodes.
func bigGraph(chains, length int) string {
	var nodes, edges strings.Builder
	for c := range chains {
		for i := range length {
			id := fmt.Sprintf("c%d_%d", c, i)
			switch {
			case i == 0:
				fmt.Fprintf(&nodes, "  - {id: %s, kind: source, plugin: schnitzel_stream.nodes.dev:TickerSource, config: {interval_sec: 0.5}}\n", id)
			case i == length-1:
				fmt.Fprintf(&nodes, "  - {id: %s, kind: sink, plugin: schnitzel_stream.nodes.dev:Identity}\n", id)
			default:
				fmt.Fprintf(&nodes, "  - {id: %s, plugin: schnitzel_stream.nodes.dev:Identity}\n", id)
			}
			if i > 0 {
				fmt.Fprintf(&edges, "  - {src: c%d_%d, dst: %s}\n", c, i-1, id)
			}
		}
	}
	return "version: 2\nnodes:\n" + nodes.String() + "edges:\n" + edges.String()
}

// TestConsole drives the web console in headless Chromium against a real
// serve: login (one-time URL and pasted token), the graph list, a graph's
// topology and tap, the editor's diagnostics and save, stop, the audit
// page, a wrong session, a 500-node graph, and the server going away.
// Screenshots of each step are kept in a directory the log names.
func TestConsole(t *testing.T) {
	shots, err := os.MkdirTemp("", "schnitzel-console-shots-")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshots in %s", shots)
	b := newBrowser(t, shots)

	dir := t.TempDir()
	graphsDir, state := filepath.Join(dir, "graphs"), filepath.Join(dir, "state")
	if err := os.MkdirAll(graphsDir, 0o700); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(graphsDir, "cam-a.yaml"), consoleTicker(0.02))
	writeFile(t, filepath.Join(graphsDir, "cam-b.yaml"), consoleTicker(0.05))
	s := startServe(t, graphsDir, state)
	s.waitState(t, "cam-a", "running")
	s.waitState(t, "cam-b", "running")
	if s.loginURL == "" {
		t.Fatalf("serve printed no console login URL:\n%s", s.stderr.String())
	}

	// 1. The one-time URL logs in and lands on the Graphs page: both
	// graphs with non-zero rates.
	b.do("login with the one-time URL",
		chromedp.Navigate(s.loginURL),
		waitJS(count(selGraphRow)+` === 2`),
	)
	var loc string
	b.do("read location", chromedp.Location(&loc))
	if strings.Contains(loc, "code=") {
		t.Errorf("the login code stays in the URL: %s", loc)
	}
	b.do("graph list shows rates",
		waitJS(`[...document.querySelectorAll('`+selGraphRow+`')].every(r => {
			const v = parseFloat((r.querySelector('[data-testid="rate-out"]') || {}).textContent);
			return v > 0;
		})`),
	)
	// Each row draws its rates as a sparkline once it has two samples.
	b.check("sparklines drawn within 5 polls", waitJSFor(count(selGraphRow+` svg.spark polyline`)+` >= 4`, 10*time.Second))
	var names []string
	b.do("graph names", chromedp.Evaluate(`[...document.querySelectorAll('`+selGraphRow+`')].map(r => r.dataset.name)`, &names))
	if strings.Join(names, ",") != "cam-a,cam-b" {
		t.Errorf("graph rows %v", names)
	}
	b.shot("graphs")

	// 2. A graph's page: its topology as node cards, a counter that moves.
	b.do("open cam-a",
		chromedp.Click(selGraphRow+`[data-name="cam-a"] [data-testid="graph-link"]`, chromedp.ByQuery),
		waitJS(count(selNodeCard)+` === 3`),
		waitJS(count(`.react-flow__edge`)+` === 2`),
	)
	b.do("live rates on the cards", waitJS(`/out [1-9]/.test(document.querySelector('[data-testid="node-card"][data-node="src"] [data-testid="node-produced"]').textContent)`))
	b.shot("graph topology")

	// The node's panel: its counters move between two reads.
	var first string
	counters := `document.querySelector('[data-testid="node-panel"] dl').textContent`
	b.do("open the node panel",
		chromedp.Click(`[data-testid="node-card"][data-node="src"]`, chromedp.ByQuery),
		chromedp.WaitVisible(`[data-testid="node-panel"]`, chromedp.ByQuery),
		chromedp.Evaluate(counters, &first),
	)
	b.do("the counters move", waitJS(counters+` !== `+jsString(first)))
	b.shot("node panel")

	// 3. Tap a node: packet rows arrive.
	b.do("tap src",
		chromedp.Click(`[data-testid="tap-button"]`, chromedp.ByQuery),
		waitJS(count(selTapRow)+` >= 3`),
	)
	b.shot("tap")
	// Pause freezes the table while packets keep coming; the filter
	// narrows it.
	var newest string
	firstRow := `document.querySelector('` + selTapRow + `').textContent`
	skipped := func(n int) chromedp.Action {
		return waitJS(fmt.Sprintf(`/([0-9]+) skipped while paused/.test(document.querySelector('[data-testid="tap-panel"]').textContent) &&
			+RegExp.$1 >= %d`, n))
	}
	// Read the table once the pause is in effect (packets are skipped),
	// then again after ten more were skipped.
	b.do("pause the tap",
		chromedp.Click(`[data-testid="tap-pause"]`, chromedp.ByQuery),
		skipped(1),
		chromedp.Evaluate(firstRow, &newest),
		skipped(12),
	)
	var still string
	b.do("read the paused table", chromedp.Evaluate(firstRow, &still))
	if still != newest {
		t.Errorf("the paused tap table changed: %q then %q", newest, still)
	}
	b.do("resume and filter",
		chromedp.Click(`[data-testid="tap-pause"]`, chromedp.ByQuery),
		waitJS(firstRow+` !== `+jsString(newest)),
		chromedp.SendKeys(`[data-testid="tap-filter"]`, "no-such-packet", chromedp.ByQuery),
		waitJS(count(selTapRow)+` === 0`),
	)
	b.do("clear the filter",
		chromedp.Click(`[data-testid="tap-filter"]`, chromedp.ByQuery),
		chromedp.KeyEvent("a", chromedp.KeyModifiers(input.ModifierCtrl)),
		chromedp.KeyEvent(kb.Delete),
		waitJS(count(selTapRow)+` >= 3`),
	)

	// 4. The editor: an error is marked on its line; the fix saves and
	// the graph reloads.
	gen := s.graphs(t)["cam-a"].Generation
	broken := strings.Replace(consoleTicker(0.02), "dev:Identity\n  - id: out", "dev:NoSuchNode\n  - id: out", 1)
	var diag struct {
		Errors []struct {
			Line int `json:"line"`
		} `json:"errors"`
	}
	a := s.do("POST", "/api/v1/validate?name=cam-a", s.token, "application/yaml", []byte(broken))
	a.json(t, &diag)
	if len(diag.Errors) == 0 || diag.Errors[0].Line == 0 {
		t.Fatalf("validate of the broken graph: %s", a.body)
	}
	wantLine := diag.Errors[0].Line
	b.do("open the editor",
		chromedp.Navigate(s.url+"/graphs/cam-a/edit"),
		chromedp.WaitVisible(`.cm-content`, chromedp.ByQuery),
		waitJS(`document.querySelector('.cm-content').textContent.includes('TickerSource')`),
	)
	b.do("introduce an error",
		setEditor(broken),
		waitJS(count(selLintError)+` > 0`),
	)
	var markedLines []int
	b.do("find the marked line", chromedp.Evaluate(`(() => {
		const lines = [...document.querySelectorAll('`+selEditorLines+`')];
		const out = [];
		lines.forEach((l, i) => { if (l.querySelector('`+selLintError+`')) out.push(i + 1); });
		return out;
	})()`, &markedLines))
	if len(markedLines) == 0 || markedLines[0] != wantLine {
		t.Errorf("diagnostic marked on lines %v, the loader says line %d", markedLines, wantLine)
	}
	b.shot("editor diagnostic")
	// The same graph as blocks beside the YAML (a look, for the screenshot).
	b.do("blocks view",
		chromedp.Click(`[data-testid="view-split"]`, chromedp.ByQuery),
		waitJS(`document.querySelectorAll('.view-blocks .react-flow__node').length === 3`),
	)
	// The blocks are drawn inside the canvas the user sees, not off-screen.
	b.check("blocks in view", waitJSFor(`(() => {
		const pane = document.querySelector('.view-blocks .react-flow').getBoundingClientRect();
		return [...document.querySelectorAll('.view-blocks .react-flow__node')].some(n => {
			const r = n.getBoundingClientRect();
			return r.width > 10 && r.right > pane.left && r.left < pane.right && r.bottom > pane.top && r.top < pane.bottom;
		});
	})()`, 5*time.Second))
	b.shot("editor yaml and blocks")
	b.do("yaml view", chromedp.Click(`[data-testid="view-yaml"]`, chromedp.ByQuery))
	fixed := consoleTicker(0.025)
	b.do("fix and save",
		setEditor(fixed),
		waitJS(count(selLintError)+` === 0 && document.querySelector('[data-testid="validity"]').textContent.startsWith('valid')`),
		chromedp.Click(selEditorSave, chromedp.ByQuery),
		// Saved: the console goes to the graph's page.
		waitJS(`location.pathname === '/graphs/cam-a'`),
		waitJS(count(selNodeCard)+` === 3`),
	)
	poll.Until(t, 20*time.Second, "cam-a to reload with the new version", func() bool {
		g := s.graphs(t)["cam-a"]
		return g.Generation > gen && g.State == "running"
	})
	if a := s.do("GET", "/api/v1/graphs/cam-a", s.token, "", nil); !strings.Contains(string(a.body), "interval_sec: 0.025") {
		t.Errorf("the saved file is not the edited one: %s", a.body)
	}
	b.shot("editor saved")

	// A new graph from blocks: a catalogue item becomes a block with its
	// config form, and the YAML follows.
	ticker := `[data-testid="palette-item"][data-plugin="schnitzel_stream.nodes.dev:TickerSource"]`
	b.do("new graph from blocks",
		chromedp.Navigate(s.url+"/new"),
		chromedp.WaitVisible(`[data-testid="view-split"]`, chromedp.ByQuery),
		chromedp.Click(`[data-testid="view-split"]`, chromedp.ByQuery),
		chromedp.WaitVisible(ticker, chromedp.ByQuery),
		chromedp.Click(ticker, chromedp.ByQuery),
		waitJS(`document.querySelector('.cm-content').textContent.includes('schnitzel_stream.nodes.dev:TickerSource')`),
		waitJS(count(`[data-testid="config-field"]`)+` > 0`),
	)
	b.shot("new graph blocks")

	// 5. Stop a graph from the list, through the confirmation dialog.
	// First with the keyboard only: Tab reaches a row's Stop button, Enter
	// opens the dialog, Escape cancels it and nothing happens.
	b.do("graphs for the keyboard",
		chromedp.Navigate(s.url+"/"),
		waitJS(count(selGraphRow)+` === 2`),
	)
	onStop := `(document.activeElement && document.activeElement.dataset.testid === 'action-stop')`
	reached := false
	for range 40 {
		var ok bool
		b.do("tab", chromedp.KeyEvent(kb.Tab), chromedp.Evaluate(onStop, &ok))
		if ok {
			reached = true
			break
		}
	}
	if !reached {
		t.Errorf("40 presses of Tab never reached a graph's Stop button")
	} else {
		b.do("keyboard: open and cancel the dialog",
			chromedp.KeyEvent(kb.Enter),
			chromedp.WaitVisible(selConfirmOK, chromedp.ByQuery),
			chromedp.KeyEvent(kb.Escape),
			chromedp.WaitNotVisible(`[data-testid="confirm-dialog"]`, chromedp.ByQuery),
		)
		for name, g := range s.graphs(t) {
			if g.State != "running" {
				t.Errorf("%s is %s after a cancelled dialog", name, g.State)
			}
		}
	}
	b.do("stop cam-b",
		chromedp.Click(selGraphRow+`[data-name="cam-b"] [data-testid="action-stop"]`, chromedp.ByQuery),
		chromedp.WaitVisible(selConfirmOK, chromedp.ByQuery),
	)
	b.shot("stop confirmation")
	b.do("confirm stop",
		chromedp.Click(selConfirmOK, chromedp.ByQuery),
		waitJS(`(document.querySelector('`+selGraphRow+`[data-name="cam-b"] [data-testid="state-badge"]') || {}).dataset?.state === 'stopped'`),
	)
	if g := s.graphs(t)["cam-b"]; g.State != "stopped" || g.Desired != "stopped" {
		t.Errorf("cam-b after stop in the console: %+v", g)
	}
	b.shot("stopped")

	// 6. Queues: the file a real graph's durable sink wrote, with two
	// dead letters made beside it; peek, then requeue them from the page.
	qpath := consoleQueue(t, s)
	qrow := selQueueRow + `[data-path=` + jsString(qpath) + `]`
	// The Dead column, found by its header.
	deadCell := `(() => {
		const col = [...document.querySelectorAll('[data-testid="queues-table"] th')].findIndex(th => th.textContent.trim() === 'Dead');
		return document.querySelector('` + qrow + `').children[col].textContent.trim();
	})()`
	b.do("queues page",
		chromedp.Navigate(s.url+"/queues"),
		chromedp.WaitVisible(qrow, chromedp.ByQuery),
		waitJS(deadCell+` === '2'`),
		chromedp.Click(qrow+` [data-testid="queue-peek"]`, chromedp.ByQuery),
		waitJS(count(`[data-testid="peek-row"]`)+` >= 5`),
	)
	b.shot("queue peek")
	b.do("requeue dead letters",
		chromedp.KeyEvent(kb.Escape),
		chromedp.WaitNotPresent(`[data-testid="peek-row"]`, chromedp.ByQuery),
		chromedp.Click(qrow+` [data-testid="queue-requeue"]`, chromedp.ByQuery),
		chromedp.WaitVisible(selConfirmOK, chromedp.ByQuery),
		chromedp.Click(selConfirmOK, chromedp.ByQuery),
		waitJS(deadCell+` === '0'`),
	)
	b.shot("queue requeued")

	// 7. The audit page lists what was done, as the session.
	b.do("audit page",
		chromedp.Navigate(s.url+"/audit"),
		waitJS(`(() => {
			const t = [...document.querySelectorAll('`+selAuditRow+`')].map(r => r.textContent).join('\n');
			return ['auth.login', 'graph.apply', 'graph.stop', 'queue.requeue'].every(a => t.includes(a));
		})()`),
	)
	b.shot("audit")
	b.do("fleet page", chromedp.Navigate(s.url+"/fleet"), chromedp.WaitVisible(`[data-testid="fleet-yaml"]`, chromedp.ByQuery))
	b.shot("fleet")

	// 7. A wrong or expired session goes to the login page, once (no loop).
	b.do("bogus session",
		network.ClearBrowserCookies(),
		setCookie(s.url, "schnitzel_session", "0000expired0000"),
		chromedp.Navigate(s.url+"/graphs/cam-a"),
		chromedp.WaitVisible(selLoginForm, chromedp.ByQuery),
	)
	before := b.requests.Load()
	// An observation window, not a synchronisation: a redirect loop would
	// make dozens of requests in it.
	b.do("watch for a loop", chromedp.Evaluate(`new Promise(r => setTimeout(() => r(true), 2000))`, nil, awaitPromise))
	if n := b.requests.Load() - before; n > 3 {
		t.Errorf("%d API requests in 2 s on the login page: a login loop", n)
	}
	b.do("still on login", chromedp.WaitVisible(selLoginForm, chromedp.ByQuery))
	b.shot("login after bad session")

	// 8. The pasted token: a wrong one is refused on the form, the right
	// one logs in.
	b.do("wrong token",
		chromedp.SendKeys(selLoginToken, "not-the-token", chromedp.ByQuery),
		chromedp.Click(`[data-testid="login-submit"]`, chromedp.ByQuery),
		chromedp.WaitVisible(selLoginError, chromedp.ByQuery),
	)
	b.shot("login wrong token")
	b.do("pasted token",
		// Select what was typed and paste over it, as a user does.
		chromedp.Click(selLoginToken, chromedp.ByQuery),
		chromedp.KeyEvent("a", chromedp.KeyModifiers(input.ModifierCtrl)),
		input.InsertText(s.token),
		chromedp.KeyEvent(kb.Enter),
		waitJS(count(selNodeCard)+` === 3 || `+count(selGraphRow)+` === 2`),
	)
	b.do("read location after login", chromedp.Location(&loc))
	if strings.Contains(loc, s.token) {
		t.Errorf("the token is in the URL: %s", loc)
	}
	b.shot("logged in with token")

	// 9. A 500-node graph: time to the first drawn node; the page still
	// answers a click.
	big := bigGraph(20, 25)
	if a := s.do("PUT", "/api/v1/graphs/big", s.token, "application/yaml", []byte(big)); a.status != 201 {
		t.Fatalf("PUT big: %d %s", a.status, a.body)
	}
	s.waitState(t, "big", "running")
	var drawn int
	start := time.Now()
	b.do("open the 500-node graph",
		chromedp.Navigate(s.url+"/graphs/big"),
		waitJS(count(selNodeCard)+` > 0`),
	)
	firstRender := time.Since(start)
	b.do("count drawn nodes", chromedp.Evaluate(count(selNodeCard), &drawn))
	clickStart := time.Now()
	// A click on a node (dispatched in the page: at the zoom that fits
	// 500 nodes a card is a few pixels wide) opens its panel.
	b.do("click a node of the big graph",
		chromedp.Evaluate(`document.querySelector('[data-testid="node-card"][data-node="c0_0"]').click()`, nil),
		chromedp.WaitVisible(`[data-testid="node-panel"]`, chromedp.ByQuery),
	)
	clickTime := time.Since(clickStart)
	var evalTime float64
	b.do("main thread round trip", chromedp.Evaluate(`(() => { const t = performance.now(); return new Promise(r => requestAnimationFrame(() => r(performance.now() - t))); })()`, &evalTime, awaitPromise))
	t.Logf("500-node graph: first node drawn after %v (%d node cards in the DOM), node click to panel %v, next animation frame %.1f ms",
		firstRender.Round(time.Millisecond), drawn, clickTime.Round(time.Millisecond), evalTime)
	if firstRender > 20*time.Second || clickTime > 20*time.Second {
		t.Errorf("500-node graph: first render %v, click %v (bound 20 s)", firstRender, clickTime)
	}
	b.shot("500 nodes")

	// A tablet's width: the pages fit it (wide tables scroll in their
	// own box, the page itself does not scroll sideways).
	noSideScroll := `document.documentElement.scrollWidth <= window.innerWidth + 1`
	b.do("tablet width: graphs",
		chromedp.EmulateViewport(768, 1024),
		chromedp.Navigate(s.url+"/"),
		waitJS(count(selGraphRow)+` === 4`),
	)
	var fits bool
	b.do("tablet width: graphs fit", chromedp.Evaluate(noSideScroll, &fits))
	if !fits {
		t.Errorf("the graphs page scrolls sideways at 768 px")
	}
	b.shot("tablet graphs")
	b.do("tablet width: graph",
		chromedp.Navigate(s.url+"/graphs/cam-a"),
		waitJS(count(selNodeCard)+` === 3`),
		chromedp.Evaluate(noSideScroll, &fits),
	)
	if !fits {
		t.Errorf("the graph page scrolls sideways at 768 px")
	}
	b.shot("tablet graph")
	b.do("desktop width", chromedp.EmulateViewport(1280, 800))

	// 10. The server goes away: a banner, no crash.
	b.do("back to the list", chromedp.Navigate(s.url+"/"), waitJS(count(selGraphRow)+` === 4`))
	b.lenient.Store(true) // failed fetches are expected now; exceptions still count
	if code := s.signal(syscall.SIGTERM); code != 0 {
		t.Errorf("serve exit %d", code)
	}
	b.do("banner", chromedp.WaitVisible(selBanner, chromedp.ByQuery))
	b.shot("server gone")

	// It comes back on the same address: the page retries, the banner
	// goes, and (sessions live in memory) the login page shows.
	addr := strings.TrimPrefix(s.url, "http://")
	s2 := startServeArgs(t, graphsDir, state, s.tokenFile, "--listen", addr)
	if s2.url != s.url {
		t.Fatalf("serve came back on %s, not %s", s2.url, s.url)
	}
	b.do("server back",
		chromedp.WaitVisible(selLoginForm, chromedp.ByQuery),
		chromedp.WaitNotPresent(selBanner, chromedp.ByQuery),
	)
	b.shot("server back")

	b.mu.Lock()
	defer b.mu.Unlock()
	for _, e := range b.errs {
		t.Errorf("browser: %s", e)
	}
}

// consoleQueue applies a graph whose durable sink stores 10 packets, waits
// for them, and makes two of them dead letters (lease, permanent nack) from
// this process, as another consumer would. It returns the file's path.
func consoleQueue(t *testing.T, s *served) string {
	t.Helper()
	graph := `version: 2
nodes:
  - {id: src, kind: source, plugin: "schnitzel_stream.nodes.dev:TickerSource", config: {interval_sec: 0.01, count: 10}}
  - {id: q, kind: sink, plugin: "schnitzel_stream.nodes.durable_sqlite:SqliteQueueSink", config: {path: "queues/feed.sqlite3"}}
edges:
  - {src: src, dst: q}
`
	if a := s.do("PUT", "/api/v1/graphs/feed", s.token, "application/yaml", []byte(graph)); a.status != 201 {
		t.Fatalf("PUT feed: %d %s", a.status, a.body)
	}
	var path string
	poll.Until(t, 20*time.Second, "the feed queue to hold 10 rows", func() bool {
		var out struct {
			Queues []struct {
				Path string `json:"path"`
				Rows int    `json:"rows"`
			} `json:"queues"`
		}
		s.do("GET", "/api/v1/queues", s.token, "", nil).json(t, &out)
		if len(out.Queues) != 1 || out.Queues[0].Rows != 10 {
			return false
		}
		path = out.Queues[0].Path
		return true
	})
	q, err := queue.Open(path, queue.Options{MustExist: true, Private: true})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	ctx := context.Background()
	ms, err := q.Lease(ctx, 2, time.Minute)
	if err != nil || len(ms) != 2 {
		t.Fatalf("lease: %v %v", ms, err)
	}
	for _, m := range ms {
		if _, err := q.Nack(ctx, queue.Ref{Seq: m.Seq}, packet.Permanent(errors.New("rejected by the test"))); err != nil {
			t.Fatal(err)
		}
	}
	return path
}

func awaitPromise(p *runtime.EvaluateParams) *runtime.EvaluateParams { return p.WithAwaitPromise(true) }

func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// setCookie sets a cookie for the server's origin, as a stale tab has.
func setCookie(base, name, value string) chromedp.Action {
	return chromedp.ActionFunc(func(ctx context.Context) error {
		return network.SetCookie(name, value).WithURL(base).WithPath("/").WithHTTPOnly(true).
			WithSameSite(network.CookieSameSiteStrict).Do(ctx)
	})
}

// TestConsoleServed: serve answers the console's page at / and any
// client route without auth, with the strict headers; the API stays
// behind auth; the login URL lands on the console.
func TestConsoleServed(t *testing.T) {
	dir := t.TempDir()
	s := startServe(t, filepath.Join(dir, "graphs"), filepath.Join(dir, "state"))
	for _, p := range []string{"/", "/graphs/cam-a", "/audit"} {
		a := s.do("GET", p, "", "", nil)
		if a.status != 200 || !strings.Contains(strings.ToLower(string(a.body)), "<!doctype html>") {
			t.Errorf("GET %s: %d %.100s", p, a.status, a.body)
		}
		if csp := a.header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") || !strings.Contains(csp, "frame-ancestors 'none'") {
			t.Errorf("GET %s: CSP %q", p, csp)
		}
		if a.header.Get("X-Frame-Options") != "DENY" || a.header.Get("Cache-Control") != "no-cache" {
			t.Errorf("GET %s: headers %v", p, a.header)
		}
	}
	if a := s.do("GET", "/api/v1/nope", "", "", nil); a.status != 401 {
		t.Errorf("unknown API path without auth: %d", a.status)
	}
	if a := s.do("GET", "/", "", "", nil, func(r *http.Request) { r.Host = "evil.example" }); a.status != 421 {
		t.Errorf("console with a foreign Host: %d", a.status)
	}
	// The one-time URL sets the cookie and redirects to the console.
	req, _ := http.NewRequest("GET", s.loginURL, nil)
	resp, err := (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 303 || resp.Header.Get("Location") != "/" || len(resp.Cookies()) != 1 {
		t.Errorf("login URL: %d %v", resp.StatusCode, resp.Header)
	}
}

// TestServeQueues: the queue routes see the file a real graph's durable
// sink writes, and nothing else.
func TestServeQueues(t *testing.T) {
	requirePlugins(t, "SqliteQueueSink")
	dir := t.TempDir()
	s := startServe(t, filepath.Join(dir, "graphs"), filepath.Join(dir, "state"))
	graph := `version: 2
nodes:
  - {id: src, kind: source, plugin: "schnitzel_stream.nodes.dev:TickerSource", config: {interval_sec: 0.01, count: 20}}
  - {id: q, kind: sink, plugin: "schnitzel_stream.nodes.durable_sqlite:SqliteQueueSink", config: {path: "queues/${oc.env:SS_Q}.sqlite3"}}
edges:
  - {src: src, dst: q}
`
	if a := s.do("PUT", "/api/v1/graphs/feed", s.token, "application/yaml", []byte(strings.ReplaceAll(graph, "${oc.env:SS_Q}", "feed"))); a.status != 201 {
		t.Fatalf("PUT feed: %d %s", a.status, a.body)
	}
	type queueRow struct {
		Path   string   `json:"path"`
		Graphs []string `json:"graphs"`
		Rows   int64    `json:"rows"`
		Exists bool     `json:"exists"`
	}
	var q queueRow
	poll.Until(t, 20*time.Second, "the queue to hold the 20 packets", func() bool {
		var out struct {
			Queues []queueRow `json:"queues"`
		}
		s.do("GET", "/api/v1/queues", s.token, "", nil).json(t, &out)
		if len(out.Queues) != 1 {
			return false
		}
		q = out.Queues[0]
		return q.Rows == 20
	})
	if !filepath.IsAbs(q.Path) || filepath.Base(q.Path) != "feed.sqlite3" || !q.Exists || strings.Join(q.Graphs, ",") != "feed" {
		t.Errorf("queue %+v", q)
	}
	if _, err := os.Stat(q.Path); err != nil {
		t.Errorf("the listed path is not the file the graph wrote: %v", err)
	}
	var peek struct {
		Rows []struct {
			Seq     int64          `json:"seq"`
			Kind    string         `json:"kind"`
			Payload map[string]any `json:"payload"`
		} `json:"rows"`
	}
	a := s.do("GET", "/api/v1/queues/peek?limit=5&path="+url.QueryEscape(q.Path), s.token, "", nil)
	a.json(t, &peek)
	if a.status != 200 || len(peek.Rows) != 5 || peek.Rows[0].Payload["seq"] == nil {
		t.Errorf("peek: %d %s", a.status, a.body)
	}
	if a := s.do("GET", "/api/v1/queues/peek?path="+url.QueryEscape(filepath.Join(s.state, "state.json")), s.token, "", nil); a.status != 403 {
		t.Errorf("peek of another file: %d %s", a.status, a.body)
	}
}

// TestConsoleSoak keeps a graph's page open with a live tap for
// SCHNITZEL_CONSOLE_SOAK (a duration, e.g. 10m; unset: skipped) and checks
// that the page's JavaScript heap, after garbage collection, stays bounded:
// polling and tap streams must not accumulate.
func TestConsoleSoak(t *testing.T) {
	d, err := time.ParseDuration(os.Getenv("SCHNITZEL_CONSOLE_SOAK"))
	if err != nil || d <= 0 {
		t.Skip("set SCHNITZEL_CONSOLE_SOAK=10m (a duration) to soak the console")
	}
	shots, err := os.MkdirTemp("", "schnitzel-console-soak-")
	if err != nil {
		t.Fatal(err)
	}
	b := newBrowser(t, shots)
	dir := t.TempDir()
	graphsDir := filepath.Join(dir, "graphs")
	if err := os.MkdirAll(graphsDir, 0o700); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(graphsDir, "cam.yaml"), consoleTicker(0.01))
	writeFile(t, filepath.Join(graphsDir, "cam2.yaml"), consoleTicker(0.05))
	s := startServe(t, graphsDir, filepath.Join(dir, "state"))
	s.waitState(t, "cam", "running")
	b.do("login", chromedp.Navigate(s.loginURL), waitJS(count(selGraphRow)+` === 2`))
	open := chromedp.Tasks{
		chromedp.Click(selGraphRow+`[data-name="cam"] [data-testid="graph-link"]`, chromedp.ByQuery),
		waitJS(count(selNodeCard) + ` === 3`),
		chromedp.Click(`[data-testid="node-card"][data-node="src"]`, chromedp.ByQuery),
		chromedp.WaitVisible(`[data-testid="tap-button"]`, chromedp.ByQuery),
		chromedp.Click(`[data-testid="tap-button"]`, chromedp.ByQuery),
		waitJS(count(selTapRow) + ` >= 3`),
	}
	heap := func() float64 {
		var used float64
		b.do("heap", chromedp.ActionFunc(func(ctx context.Context) error {
			if err := heapprofiler.CollectGarbage().Do(ctx); err != nil {
				return err
			}
			var err error
			used, _, _, _, err = runtime.GetHeapUsage().Do(ctx)
			return err
		}))
		return used
	}
	b.do("open the graph with a tap", open)
	// Warm up (caches, first chunks), then measure.
	time.Sleep(min(d/10, 30*time.Second))
	start := heap()
	t.Logf("heap after warm-up: %.1f MB", start/1e6)
	end := time.Now().Add(d)
	for i := 0; time.Now().Before(end); i++ {
		time.Sleep(min(time.Until(end), 30*time.Second))
		if i%4 == 3 {
			// Leave and come back: mounts and unmounts must not leak either.
			b.do("leave and come back", chromedp.Click(`a[href="/"]`, chromedp.ByQuery), waitJS(count(selGraphRow)+` === 2`), open)
		}
		t.Logf("heap after %v: %.1f MB", d-time.Until(end).Round(time.Second), heap()/1e6)
	}
	last := heap()
	b.shot("soak end")
	if last > 2*start+5e6 {
		t.Errorf("heap grew from %.1f MB to %.1f MB over %v", start/1e6, last/1e6, d)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, e := range b.errs {
		t.Errorf("browser: %s", e)
	}
}
