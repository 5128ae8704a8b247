package mapping

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/schnitzel-stream/schnitzel/packet"
	"github.com/schnitzel-stream/schnitzel/plugin"
)

// WindowAggregate is one output field of a Window.
type WindowAggregate struct {
	Op   string `yaml:"op" enum:"count,sum,min,max,avg,first,last,expr" doc:"count, sum, min, max, avg, first, last of expr's value per packet (nulls skipped; count without expr counts packets), or expr: expr is evaluated once over the window's items."`
	Expr string `yaml:"expr" doc:"Per packet (payload.x) for the ops that take a value; for op expr, an expression over items (the window's payloads), key and count." example:"payload.temp|sum(items, .n) / len(items)"`
}

// WindowConfig is Window's config.
type WindowConfig struct {
	Type               string                     `yaml:"type" enum:"tumbling,sliding,session" doc:"tumbling: back-to-back windows of size_sec; sliding: windows of size_sec starting every slide_sec (a packet is in several); session: a window per key that ends gap_sec after its last packet."`
	SizeSec            plugin.Seconds             `yaml:"size_sec" doc:"Length of a tumbling or sliding window, in seconds."`
	SlideSec           plugin.Seconds             `yaml:"slide_sec" doc:"Seconds between the starts of sliding windows (<= size_sec)."`
	GapSec             plugin.Seconds             `yaml:"gap_sec" doc:"Seconds without a packet that end a session."`
	Time               string                     `yaml:"time" enum:"event,processing" doc:"event: windows follow the packets' own time (ts, or ts_expr) and close when the watermark passes them; processing: the node's clock, windows close on a timer."`
	TSExpr             string                     `yaml:"ts_expr" doc:"Event time of a packet: an expression giving a time, an RFC 3339 string or Unix seconds. Empty: the packet's ts." example:"payload.t"`
	AllowedLatenessSec plugin.Seconds             `yaml:"allowed_lateness_sec" doc:"How far behind the latest event time seen a packet may be and still count (event time): the watermark is that latest time minus this."`
	LatePort           string                     `yaml:"late_port" doc:"Output port for late packets (their windows are closed); empty: they are dropped. Either way they are counted in late_total."`
	Key                string                     `yaml:"key" doc:"Expression whose value chooses the window set: windows per key. Empty: one set." example:"source_id"`
	MaxKeys            int                        `yaml:"max_keys" doc:"Most keys with open windows; past it the least recently used key's windows are emitted early (counted in evictions_total)."`
	MaxItemsPerWindow  int                        `yaml:"max_items_per_window" doc:"Most payloads a window keeps for op expr aggregates (only then are they kept); the rest are counted in items_capped_total and left out of items."`
	Aggregates         map[string]WindowAggregate `yaml:"aggregates" doc:"Output field -> {op, expr}, written into each window's payload after window_start, window_end, key and count (in name order)." example:"{\"avg_temp\": {\"op\": \"avg\", \"expr\": \"payload.temp\"}}"`
	OutKind            string                     `yaml:"kind" doc:"Kind of the window packets."`
	ErrorPolicy        `yaml:",inline"`
}

// OutPorts are late_port and error_port (plugin.PortConfig).
func (c WindowConfig) OutPorts() []string {
	ports := c.ErrorPolicy.OutPorts()
	if c.LatePort != "" && !slices.Contains(ports, c.LatePort) {
		ports = append(ports, c.LatePort)
	}
	return ports
}

// WindowEnv is what an op expr aggregate sees.
type WindowEnv struct {
	Items []any `expr:"items"`
	Key   any   `expr:"key"`
	Count int   `expr:"count"`
}

// windowFields are the payload fields every window has.
var windowFields = []string{"window_start", "window_end", "key", "count"}

// Validate compiles the expressions and checks the sizes.
func (c *WindowConfig) Validate() error {
	_, err := c.compile()
	return err
}

type windowAgg struct {
	name string
	op   string
	expr *program // per packet; for op expr, over WindowEnv
}

func (c *WindowConfig) compile() (aggs []windowAgg, err error) {
	errs := []error{c.ErrorPolicy.validate()}
	pos := func(key string, v plugin.Seconds) {
		if !(v > 0) || math.IsInf(float64(v), 0) {
			errs = append(errs, plugin.Errorf(key, "%s must be > 0 seconds for type %s (got %v)", key, c.Type, float64(v)))
		}
	}
	switch c.Type {
	case "tumbling":
		pos("size_sec", c.SizeSec)
	case "sliding":
		pos("size_sec", c.SizeSec)
		pos("slide_sec", c.SlideSec)
		if c.SlideSec > c.SizeSec && c.SizeSec > 0 {
			errs = append(errs, plugin.Errorf("slide_sec", "slide_sec (%v) must be <= size_sec (%v): packets between windows would be lost", float64(c.SlideSec), float64(c.SizeSec)))
		}
	case "session":
		pos("gap_sec", c.GapSec)
	default:
		errs = append(errs, plugin.Errorf("type", "type %q: want tumbling, sliding or session", c.Type))
	}
	if c.Time != "event" && c.Time != "processing" {
		errs = append(errs, plugin.Errorf("time", "time %q: want event or processing", c.Time))
	}
	if c.AllowedLatenessSec < 0 {
		errs = append(errs, plugin.Errorf("allowed_lateness_sec", "allowed_lateness_sec must be >= 0 (got %v)", float64(c.AllowedLatenessSec)))
	}
	for _, e := range []struct{ key, src string }{{"ts_expr", c.TSExpr}, {"key", c.Key}} {
		if strings.TrimSpace(e.src) != "" {
			if _, err := compile(e.src, false); err != nil {
				errs = append(errs, plugin.Errorf(e.key, "%v", err))
			}
		}
	}
	if c.LatePort != "" && !validPort(c.LatePort) {
		errs = append(errs, plugin.Errorf("late_port", "port %q must be a name (letters, digits, _; not starting with a digit)", c.LatePort))
	}
	if c.MaxKeys < 1 {
		errs = append(errs, plugin.Errorf("max_keys", "max_keys must be >= 1 (got %d)", c.MaxKeys))
	}
	if c.MaxItemsPerWindow < 1 {
		errs = append(errs, plugin.Errorf("max_items_per_window", "max_items_per_window must be >= 1 (got %d)", c.MaxItemsPerWindow))
	}
	if strings.TrimSpace(c.OutKind) == "" {
		errs = append(errs, plugin.Errorf("kind", "kind must not be empty"))
	}
	names := make([]string, 0, len(c.Aggregates))
	for n := range c.Aggregates {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		a := c.Aggregates[n]
		key := "aggregates." + n
		if slices.Contains(windowFields, n) || n == "" {
			errs = append(errs, plugin.Errorf(key, "%q is a field every window has (%s): choose another name", n, strings.Join(windowFields, ", ")))
			continue
		}
		wa := windowAgg{name: n, op: a.Op}
		var err error
		switch a.Op {
		case "count":
			if strings.TrimSpace(a.Expr) != "" {
				wa.expr, err = compile(a.Expr, false)
			}
		case "sum", "min", "max", "avg", "first", "last":
			wa.expr, err = compile(a.Expr, false)
		case "expr":
			wa.expr, err = compileIn(a.Expr, false, WindowEnv{})
		default:
			errs = append(errs, plugin.Errorf(key+".op", "op %q: want count, sum, min, max, avg, first, last or expr", a.Op))
			continue
		}
		if err != nil {
			errs = append(errs, plugin.Errorf(key+".expr", "%v", err))
			continue
		}
		aggs = append(aggs, wa)
	}
	return aggs, joinErrs(errs)
}

func registerWindow(r *plugin.Registry) {
	plugin.Register(r, plugin.Spec[WindowConfig]{
		Name:      mod + "Window",
		Role:      plugin.RoleNode,
		Summary:   "Aggregate packets over tumbling, sliding or session windows, by event or processing time (docs/processing.md).",
		Stability: plugin.Experimental,
		Description: "Emits one packet per closed window: payload {window_start, window_end, key, count, <aggregates>}, ts window_end, " +
			"source_id the key (or the window's first packet's). Event-time windows close when the watermark (latest event time minus " +
			"allowed_lateness_sec) passes their end; processing-time windows on a timer; every open window is emitted at the end of input. " +
			"A window packet's Ack acknowledges its packets (a sliding window's packet is acknowledged by the last window it is in).",
		Metrics: []plugin.MetricSpec{
			{Name: "windows_total", Help: "Window packets emitted."},
			{Name: "windowed_total", Help: "Packets put into windows."},
			{Name: "late_total", Help: "Packets whose windows had closed (dropped, or sent to late_port)."},
			{Name: "evictions_total", Help: "Keys whose windows were emitted early because max_keys keys were open."},
			{Name: "items_capped_total", Help: "Payloads left out of a window's items past max_items_per_window (op expr aggregates see fewer)."},
			{Name: "open_windows", Help: "Windows open now.", Gauge: true},
			{Name: "eval_errors_total", Help: "Packets whose key, time or aggregate value failed at run time (handled by on_error), and op expr aggregates that failed (field null)."},
		},
		Defaults: WindowConfig{Type: "tumbling", SizeSec: 60, Time: "event", MaxKeys: 10000, MaxItemsPerWindow: 10000, OutKind: "window",
			ErrorPolicy: ErrorPolicy{OnError: onErrorDrop}},
		NewProcessor: func(c WindowConfig, env plugin.Env) (plugin.Processor, error) {
			aggs, err := c.compile()
			if err != nil {
				return nil, fmt.Errorf("node %q: %w", env.NodeID, err)
			}
			cs := env.Counters()
			w := &windower{cfg: c, aggs: aggs, size: nanos(c.SizeSec), slide: nanos(c.SlideSec), gap: nanos(c.GapSec),
				lateness: nanos(c.AllowedLatenessSec), processing: c.Time == "processing", now: time.Now,
				keys: map[string]*list.Element{}, lru: list.New(), watermark: math.MinInt64, maxTS: math.MinInt64, nextClose: math.MaxInt64,
				Counters: cs, windows: cs.Get("windows_total"), windowed: cs.Get("windowed_total"), late: cs.Get("late_total"),
				evictions: cs.Get("evictions_total"), capped: cs.Get("items_capped_total"), open: cs.Get("open_windows"),
				failer: c.failer(env, cs)}
			for _, a := range aggs {
				w.needItems = w.needItems || a.op == "expr"
			}
			if strings.TrimSpace(c.Key) != "" {
				w.key, _ = compile(c.Key, false)
			}
			if strings.TrimSpace(c.TSExpr) != "" {
				w.tsExpr, _ = compile(c.TSExpr, false)
			}
			return w, nil
		},
	})
}

func nanos(s plugin.Seconds) int64 { return int64(s.Duration()) }

// accum is one aggregate's running value in one window.
type accum struct {
	n           int64
	sumF        float64
	sumI        int64
	floats      bool // a float was summed: the sum is sumF+sumI as a float
	min, max    any
	first, last any
}

func (a *accum) add(op string, v any) error {
	if v == nil && op != "count" {
		return nil
	}
	switch op {
	case "count":
		if v != nil {
			a.n++
		}
		return nil
	case "first":
		if a.n == 0 {
			a.first = v
		}
		a.last = v
		a.n++
		return nil
	case "last":
		a.last = v
		a.n++
		return nil
	}
	switch x := v.(type) {
	case int64:
		a.sumI += x
	case int:
		a.sumI += int64(x)
		v = int64(x)
	case float64:
		a.sumF += x
		a.floats = true
	default:
		return fmt.Errorf("%s needs numbers, got %s", op, typeOf(v))
	}
	if a.n == 0 || toFloat(v) < toFloat(a.min) {
		a.min = v
	}
	if a.n == 0 || toFloat(v) > toFloat(a.max) {
		a.max = v
	}
	a.n++
	return nil
}

// merge adds b, a later window's accumulation (a session that joined a's).
func (a *accum) merge(b *accum) {
	if b.n == 0 {
		return
	}
	if a.n == 0 || toFloat(b.min) < toFloat(a.min) {
		a.min = b.min
	}
	if a.n == 0 || toFloat(b.max) > toFloat(a.max) {
		a.max = b.max
	}
	if a.n == 0 {
		a.first = b.first
	}
	a.last = b.last
	a.n += b.n
	a.sumF += b.sumF
	a.sumI += b.sumI
	a.floats = a.floats || b.floats
}

func (a *accum) result(op string) any {
	sum := func() any {
		if a.floats {
			return a.sumF + float64(a.sumI)
		}
		return a.sumI
	}
	switch op {
	case "count":
		return a.n
	case "sum":
		return sum()
	case "avg":
		if a.n == 0 {
			return nil
		}
		return (a.sumF + float64(a.sumI)) / float64(a.n)
	case "min":
		return a.min
	case "max":
		return a.max
	case "first":
		return a.first
	case "last":
		return a.last
	}
	return nil
}

// win is one open window.
type win struct {
	start, end int64 // ns since the epoch; end excluded
	last       int64 // session: latest event time in it
	count      int64
	aggs       []accum
	items      []any
	acks       acks
	firstSrc   string
}

// keyWins are one key's open windows, by start.
type keyWins struct {
	key    string
	keyVal any
	wins   []*win
}

type windower struct {
	cfg              WindowConfig
	aggs             []windowAgg
	size, slide, gap int64
	lateness         int64
	processing       bool
	needItems        bool
	key, tsExpr      *program
	run              runner
	closeRun         runner // op expr at close, under mu: a processing-time timer closes windows while Process runs
	wenv             WindowEnv
	vals             []any
	now              func() time.Time
	timer            *time.Timer // processing time: fires at nextClose
	timerAt          int64
	warnAgg          plugin.RateLog
	background
	keys             map[string]*list.Element // of *keyWins, least recently used first
	lru              *list.List
	nwins            int
	watermark, maxTS int64
	nextClose        int64 // no open window ends before it

	*plugin.Counters
	windows, windowed, late, evictions, capped *plugin.Counter
	open                                       *plugin.Counter // gauge open_windows: stored under mu when the windows change
	failer
}

// eventTime is p's time in ns: ts_expr's value or the packet's ts.
func (w *windower) eventTime(p *packet.Packet) (int64, error) {
	if w.processing {
		return w.now().UnixNano(), nil
	}
	var v any = p.TS
	if w.tsExpr != nil {
		var err error
		if v, err = w.run.run(w.tsExpr); err != nil {
			return 0, fmt.Errorf("ts_expr: %w", err)
		}
	}
	switch x := v.(type) {
	case time.Time:
		return x.UnixNano(), nil
	case string:
		t, err := time.Parse(time.RFC3339Nano, x)
		if err != nil {
			return 0, fmt.Errorf("event time %q is not an RFC 3339 time", x)
		}
		return t.UnixNano(), nil
	case int, int64, float64:
		return int64(toFloat(x) * 1e9), nil
	}
	return 0, fmt.Errorf("event time: want a time, an RFC 3339 string or Unix seconds, got %s", typeOf(v))
}

func (w *windower) Process(_ context.Context, p *packet.Packet, out plugin.Emitter) error {
	w.run.env.fill(p)
	k, kv := "", any(nil)
	if w.key != nil {
		v, err := w.run.run(w.key)
		if err == nil {
			k, err = keyString(v)
		}
		if err != nil {
			return w.fail(p, fmt.Errorf("key: %w", err), out)
		}
		kv, _ = toPacket(v)
	}
	t, err := w.eventTime(p)
	if err != nil {
		return w.fail(p, err, out)
	}
	w.vals = w.vals[:0]
	for _, a := range w.aggs {
		var v any
		if a.expr != nil && a.op != "expr" {
			if v, err = w.run.run(a.expr); err != nil {
				return w.fail(p, fmt.Errorf("aggregates.%s: %w", a.name, err), out)
			}
			if v, err = toPacket(v); err != nil {
				return w.fail(p, fmt.Errorf("aggregates.%s: %w", a.name, err), out)
			}
		}
		w.vals = append(w.vals, v)
	}

	w.mu.Lock()
	w.remember(out)
	var ready []portPacket
	wm := w.watermark
	if w.processing {
		wm = math.MinInt64 // nothing is late on the node's clock
	}
	ok, evicted := w.assign(k, kv, t, wm, p, &ready)
	if !ok {
		w.mu.Unlock()
		if err := emitAll(out, ready); err != nil {
			return err
		}
		w.late.Add(1)
		if w.cfg.LatePort != "" {
			return out.EmitPort(w.cfg.LatePort, p)
		}
		return nil
	}
	if evicted {
		w.evictions.Add(1)
	}
	w.windowed.Add(1)
	if w.processing {
		w.closeUntil(w.now().UnixNano(), &ready)
		w.arm()
	} else {
		if t > w.maxTS {
			w.maxTS = t
			w.watermark = t - w.lateness
		}
		w.closeUntil(w.watermark, &ready)
	}
	w.open.Store(int64(w.nwins))
	w.mu.Unlock()
	return emitAll(out, ready)
}

// assign puts p (at time t, key k) into its windows; false when they had
// all closed (p is late). Called with mu held.
func (w *windower) assign(k string, kv any, t, wm int64, p *packet.Packet, ready *[]portPacket) (ok, evicted bool) {
	var kw *keyWins
	if e, has := w.keys[k]; has {
		w.lru.MoveToBack(e)
		kw = e.Value.(*keyWins)
	}
	var targets []*win
	switch w.cfg.Type {
	case "tumbling":
		s := floorDiv(t, w.size) * w.size
		if s+w.size <= wm {
			return false, false
		}
		kw, evicted = w.keyFor(kw, k, kv, ready)
		targets = append(targets, w.windowAt(kw, s, s+w.size))
	case "sliding":
		for s := floorDiv(t, w.slide) * w.slide; s > t-w.size; s -= w.slide {
			if s+w.size > wm {
				if kw == nil {
					kw, evicted = w.keyFor(kw, k, kv, ready)
				}
				targets = append(targets, w.windowAt(kw, s, s+w.size))
			}
		}
		if len(targets) == 0 {
			return false, false
		}
	case "session":
		var into *win
		if kw != nil {
			for _, x := range kw.wins {
				if t >= x.start-w.gap && t < x.end {
					into = x
					break
				}
			}
		}
		if into == nil {
			if t+w.gap <= wm {
				return false, false
			}
			kw, evicted = w.keyFor(kw, k, kv, ready)
			into = w.windowAt(kw, t, t+w.gap)
			into.last = t
		}
		into.start = min(into.start, t)
		into.last = max(into.last, t)
		into.end = into.last + w.gap
		targets = append(targets, w.mergeSessions(kw, into))
	}
	for i, x := range targets {
		x.count++
		if x.count == 1 {
			x.firstSrc = p.SourceID
		}
		for j, a := range w.aggs {
			if a.op == "count" && a.expr == nil {
				continue
			}
			_ = x.aggs[j].add(a.op, w.vals[j]) // numbers were checked when the value was computed
		}
		if w.needItems {
			if len(x.items) < w.cfg.MaxItemsPerWindow {
				x.items = append(x.items, p.Payload)
			} else {
				w.capped.Add(1)
			}
		}
		// The window that closes last acknowledges the packet (the
		// targets of a sliding window go from the latest start down).
		if i == 0 {
			x.acks.add(p)
		}
	}
	return true, evicted
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

// keyFor returns k's windows, making room when max_keys keys are open.
func (w *windower) keyFor(kw *keyWins, k string, kv any, ready *[]portPacket) (*keyWins, bool) {
	if kw != nil {
		return kw, false
	}
	evicted := false
	if w.lru.Len() >= w.cfg.MaxKeys {
		old := w.lru.Remove(w.lru.Front()).(*keyWins)
		delete(w.keys, old.key)
		for _, x := range old.wins {
			*ready = append(*ready, w.emit(old, x))
		}
		w.nwins -= len(old.wins)
		evicted = true
	}
	kw = &keyWins{key: k, keyVal: kv}
	w.keys[k] = w.lru.PushBack(kw)
	return kw, evicted
}

// windowAt returns kw's window [s, e), opening it.
func (w *windower) windowAt(kw *keyWins, s, e int64) *win {
	i, found := slices.BinarySearchFunc(kw.wins, s, func(x *win, s int64) int { return cmpInt(x.start, s) })
	if found && w.cfg.Type != "session" {
		return kw.wins[i]
	}
	x := &win{start: s, end: e, aggs: make([]accum, len(w.aggs))}
	kw.wins = slices.Insert(kw.wins, i, x)
	w.nwins++
	w.nextClose = min(w.nextClose, e)
	return x
}

func cmpInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// mergeSessions joins into with the sessions it now overlaps (an
// out-of-order packet bridged a gap) and returns the joined session.
func (w *windower) mergeSessions(kw *keyWins, into *win) *win {
	slices.SortFunc(kw.wins, func(a, b *win) int { return cmpInt(a.start, b.start) })
	out := kw.wins[:0]
	for _, x := range kw.wins {
		if n := len(out); n > 0 && x.start < out[n-1].end {
			prev := out[n-1]
			for j := range prev.aggs {
				prev.aggs[j].merge(&x.aggs[j])
			}
			prev.count += x.count
			prev.items = append(prev.items, x.items...)
			if len(prev.items) > w.cfg.MaxItemsPerWindow {
				w.capped.Add(int64(len(prev.items) - w.cfg.MaxItemsPerWindow))
				prev.items = prev.items[:w.cfg.MaxItemsPerWindow]
			}
			prev.acks.merge(&x.acks)
			prev.last = max(prev.last, x.last)
			prev.end = max(prev.end, x.end)
			if x == into {
				into = prev
			}
			w.nwins--
			continue
		}
		out = append(out, x)
	}
	clear(kw.wins[len(out):])
	kw.wins = out
	return into
}

// closeUntil emits the windows that end at or before wm, in end order
// (then start, then key).
// Called with mu held.
func (w *windower) closeUntil(wm int64, ready *[]portPacket) {
	if wm < w.nextClose {
		return
	}
	w.closeWhere(func(x *win) bool { return x.end <= wm }, ready)
}

func (w *windower) closeWhere(done func(*win) bool, ready *[]portPacket) {
	type closing struct {
		kw *keyWins
		x  *win
	}
	var cs []closing
	next := int64(math.MaxInt64)
	for e := w.lru.Front(); e != nil; {
		kw := e.Value.(*keyWins)
		keep := kw.wins[:0]
		for _, x := range kw.wins {
			if done(x) {
				cs = append(cs, closing{kw, x})
				continue
			}
			keep = append(keep, x)
			next = min(next, x.end)
		}
		clear(kw.wins[len(keep):])
		kw.wins = keep
		nx := e.Next()
		if len(keep) == 0 {
			w.lru.Remove(e)
			delete(w.keys, kw.key)
		}
		e = nx
	}
	w.nextClose = next
	sort.SliceStable(cs, func(i, j int) bool {
		if cs[i].x.end != cs[j].x.end {
			return cs[i].x.end < cs[j].x.end
		}
		if cs[i].x.start != cs[j].x.start {
			return cs[i].x.start < cs[j].x.start
		}
		return cs[i].kw.key < cs[j].kw.key // not arrival order, which interleaved inputs make random
	})
	for _, c := range cs {
		*ready = append(*ready, w.emit(c.kw, c.x))
	}
	w.nwins -= len(cs)
}

// emit builds x's packet. Called with mu held.
func (w *windower) emit(kw *keyWins, x *win) portPacket {
	m := packet.NewMap(len(windowFields) + len(w.aggs))
	end := packet.FormatTS(time.Unix(0, x.end))
	m.AppendNew("window_start", packet.FormatTS(time.Unix(0, x.start)))
	m.AppendNew("window_end", end)
	m.AppendNew("key", kw.keyVal)
	m.AppendNew("count", x.count)
	for j, a := range w.aggs {
		var v any
		switch {
		case a.op == "expr":
			w.wenv = WindowEnv{Items: x.items, Key: kw.keyVal, Count: int(x.count)}
			r, err := w.closeRun.runIn(a.expr, &w.wenv)
			if err == nil {
				r, err = toPacket(r)
			}
			if err != nil {
				w.errors.Add(1)
				w.warnAgg.Warn(w.log, "window aggregate failed; field set to null", "node", w.id, "field", a.name, "err", err.Error())
				r = nil
			}
			v = r
		case a.op == "count" && a.expr == nil:
			v = x.count
		default:
			v = x.aggs[j].result(a.op)
		}
		m.AppendNew(a.name, v)
	}
	src := x.firstSrc
	if w.key != nil {
		src = keyDisplay(kw.key)
	}
	q := &packet.Packet{ID: packet.NewID(), TS: end, Kind: w.cfg.OutKind, SourceID: src, Payload: m}
	x.acks.set(q)
	w.windows.Add(1)
	return portPacket{p: q}
}

// arm sets the processing-time timer for the next window end. Called
// with mu held.
func (w *windower) arm() {
	if w.nextClose == math.MaxInt64 || w.timer != nil && w.timerAt <= w.nextClose {
		return
	}
	d := time.Duration(w.nextClose - w.now().UnixNano())
	w.timerAt = w.nextClose
	if w.timer == nil {
		w.timer = time.AfterFunc(d, w.tick)
	} else {
		w.timer.Reset(d)
	}
}

// tick closes the processing-time windows that ended, from the timer's goroutine.
func (w *windower) tick() {
	w.mu.Lock()
	w.timerAt = math.MaxInt64
	out := w.begin()
	if out == nil {
		w.mu.Unlock()
		return
	}
	var ready []portPacket
	w.closeUntil(w.now().UnixNano(), &ready)
	if w.nextClose != math.MaxInt64 {
		w.timerAt = w.nextClose
		w.timer.Reset(time.Duration(w.nextClose - w.now().UnixNano()))
	}
	w.open.Store(int64(w.nwins))
	w.mu.Unlock()
	defer w.wg.Done()
	_ = emitAll(out, ready) // an emit that fails ends the run; its packets are nacked
}

// Flush emits every open window (the end of input) and waits for what a
// timer is emitting.
func (w *windower) Flush(_ context.Context, out plugin.Emitter) error {
	w.mu.Lock()
	var ready []portPacket
	w.closeWhere(func(*win) bool { return true }, &ready)
	w.open.Store(0)
	w.mu.Unlock()
	err := emitAll(out, ready)
	w.wg.Wait()
	return err
}

// Close stops the timer; windows still open (the run was cancelled before
// the end of input) are nacked so that their origin retries them.
func (w *windower) Close(context.Context) error {
	w.mu.Lock()
	w.closed = true
	if w.timer != nil {
		w.timer.Stop()
	}
	var a acks
	for e := w.lru.Front(); e != nil; e = e.Next() {
		for _, x := range e.Value.(*keyWins).wins {
			a.merge(&x.acks)
		}
	}
	w.lru.Init()
	clear(w.keys)
	w.nwins = 0
	w.nextClose = math.MaxInt64
	w.open.Store(0)
	w.mu.Unlock()
	w.wg.Wait()
	a.nackAll(errors.New("window not emitted: the node was closed before the end of its input"))
	return nil
}

// keyDisplay is a key as source_id: a string key as it is, another as its JSON.
func keyDisplay(k string) string { return strings.TrimPrefix(k, "\x00") }
