package lines

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/schnitzel-stream/schnitzel/packet"
	"github.com/schnitzel-stream/schnitzel/plugin"
	"github.com/schnitzel-stream/schnitzel/plugin/plugintest"
)

// build decodes cfg for the named node and constructs it with env.
func build(t *testing.T, name string, cfg *packet.Map, env plugin.Env) any {
	t.Helper()
	reg := plugin.NewRegistry()
	Register(reg)
	e, ok := reg.Lookup(mod + name)
	if !ok {
		t.Fatalf("%s not registered", name)
	}
	if cfg == nil {
		cfg = packet.NewMap(0)
	}
	dec, warns, errs := e.Decode(cfg)
	if len(warns)+len(errs) > 0 {
		t.Fatalf("decode %s: warnings %v errors %v", name, warns, errs)
	}
	if env.NodeID == "" {
		env.NodeID = "n"
	}
	if env.Logger == nil {
		env.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	n, err := e.Build(dec, env)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func metric(n plugin.Metrics, name string) int64 {
	for _, m := range n.Metrics() {
		if m.Name == name {
			return m.Value
		}
	}
	return -1
}

func jsonOf(v any) string { return string(packet.AppendJSON(nil, v, packet.Compact)) }

func TestLineReader(t *testing.T) {
	type got struct {
		line           string
		complete, long bool
	}
	tests := []struct {
		name, in string
		max      int
		want     []got
		wantN    int // bytes consumed in all
	}{
		{"lf and crlf", "a\nbc\r\n\n", 10, []got{{"a", true, false}, {"bc", true, false}, {"", true, false}}, 7},
		{"partial last", "a\nb", 10, []got{{"a", true, false}, {"b", false, false}}, 3},
		{"cr kept inside", "a\rb\n", 10, []got{{"a\rb", true, false}}, 4},
		{"exactly max with crlf", "abcd\r\nx\n", 4, []got{{"abcd", true, false}, {"x", true, false}}, 8},
		{"longer than max", "abcdef\nok\n", 4, []got{{"abcd", true, true}, {"ok", true, false}}, 10},
		{"long across buffers", strings.Repeat("x", 3*readBuf) + "\nok\n", 10, []got{{strings.Repeat("x", 10), true, true}, {"ok", true, false}}, 3*readBuf + 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newLineReader(strings.NewReader(tt.in), tt.max)
			var all []got
			total := 0
			for {
				line, n, complete, long, err := r.next()
				total += n
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				all = append(all, got{string(line), complete, long})
			}
			if len(all) != len(tt.want) {
				t.Fatalf("got %+v, want %+v", all, tt.want)
			}
			for i := range all {
				if all[i] != tt.want[i] {
					t.Errorf("line %d: got %+v, want %+v", i, all[i], tt.want[i])
				}
			}
			if total != tt.wantN {
				t.Errorf("consumed %d bytes, want %d", total, tt.wantN)
			}
			if cap(r.buf) > tt.max+2+readBuf {
				t.Errorf("reader kept %d bytes for a max of %d", cap(r.buf), tt.max)
			}
		})
	}
}

func runStdin(t *testing.T, in string, cfg *packet.Map) (*stdinSource, []*packet.Packet, error) {
	t.Helper()
	n := build(t, "StdinSource", cfg, plugin.Env{Stdin: strings.NewReader(in)}).(*stdinSource)
	var c plugintest.Collector
	err := n.Run(context.Background(), &c)
	if cerr := n.Close(context.Background()); cerr != nil {
		t.Fatal(cerr)
	}
	return n, c.Packets(), err
}

func TestStdin(t *testing.T) {
	tests := []struct {
		name     string
		in       string
		cfg      *packet.Map
		want     []string // payloads as compact JSON
		bad      int64
		dropped  int64
		errorHas string
	}{
		{name: "lines, crlf, partial last", in: "one\r\ntwo\n\nthree", want: []string{`{"line":"one"}`, `{"line":"two"}`, `{"line":""}`, `{"line":"three"}`}},
		{name: "ndjson", in: `{"a":1}` + "\n\n" + `[1,2]` + "\r\n" + `"s"` + "\n", cfg: packet.MapOf("format", "ndjson"),
			want: []string{`{"a":1}`, `[1,2]`, `"s"`}},
		{name: "ndjson bad dropped", in: "{\"a\":1}\nnot json\n{\"b\":2}\n", cfg: packet.MapOf("format", "ndjson"),
			want: []string{`{"a":1}`, `{"b":2}`}, bad: 1, dropped: 1},
		{name: "ndjson bad as string", in: "{\"a\":1}\n{oops\n", cfg: packet.MapOf("format", "ndjson", "on_bad_line", "string"),
			want: []string{`{"a":1}`, `{"line":"{oops"}`}, bad: 1},
		{name: "ndjson bad is an error", in: "{\"a\":1}\n{oops\n{\"c\":3}\n", cfg: packet.MapOf("format", "ndjson", "on_bad_line", "error"),
			want: []string{`{"a":1}`}, bad: 1, errorHas: "stdin line 2"},
		{name: "auto", in: "{\"a\":1}\nplain text\n[oops\n", cfg: packet.MapOf("format", "auto"),
			want: []string{`{"a":1}`, `{"line":"plain text"}`}, bad: 1, dropped: 1},
		{name: "long dropped", in: "short\n" + strings.Repeat("y", 100) + "\nok\n", cfg: packet.MapOf("max_line_bytes", int64(10)),
			want: []string{`{"line":"short"}`, `{"line":"ok"}`}, dropped: 1},
		{name: "long truncated", in: strings.Repeat("y", 100) + "\n", cfg: packet.MapOf("max_line_bytes", int64(3), "on_long_line", "truncate"),
			want: []string{`{"line":"yyy"}`}},
		{name: "empty input", in: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, pkts, err := runStdin(t, tt.in, tt.cfg)
			if tt.errorHas != "" {
				if err == nil || !strings.Contains(err.Error(), tt.errorHas) || !errors.Is(err, errBadLine) {
					t.Fatalf("err %v, want one naming %q", err, tt.errorHas)
				}
			} else if err != nil {
				t.Fatal(err)
			}
			var got []string
			for i, p := range pkts {
				got = append(got, jsonOf(p.Payload))
				if p.Kind != "event" || p.SourceID != "stdin" {
					t.Errorf("kind %q source_id %q", p.Kind, p.SourceID)
				}
				if _, ok := p.Meta.Get("line_number"); !ok {
					t.Errorf("packet %d has no line_number", i)
				}
			}
			if strings.Join(got, "|") != strings.Join(tt.want, "|") {
				t.Fatalf("payloads\n got %q\nwant %q", got, tt.want)
			}
			if b := metric(n, "bad_lines_total"); b != tt.bad {
				t.Errorf("bad_lines_total %d, want %d", b, tt.bad)
			}
			if d := metric(n, "dropped_total"); d != tt.dropped {
				t.Errorf("dropped_total %d, want %d", d, tt.dropped)
			}
		})
	}
}

func TestStdinKindAndSourceID(t *testing.T) {
	_, pkts, err := runStdin(t, "x\n", packet.MapOf("kind", "raw", "source_id", "cam9"))
	if err != nil || len(pkts) != 1 || pkts[0].Kind != "raw" || pkts[0].SourceID != "cam9" {
		t.Fatalf("err %v packets %v", err, pkts)
	}
	if ln, _ := pkts[0].Meta.Get("line_number"); ln != int64(1) {
		t.Fatalf("line_number %v", ln)
	}
}

// blockingReader never returns until closed: a stdin nobody writes to.
type blockingReader struct{ done chan struct{} }

func (b blockingReader) Read([]byte) (int, error) { <-b.done; return 0, io.EOF }

func TestStdinCancelWhileReadBlocks(t *testing.T) {
	br := blockingReader{done: make(chan struct{})}
	defer close(br.done)
	n := build(t, "StdinSource", nil, plugin.Env{Stdin: br}).(*stdinSource)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx, &plugintest.Collector{}) }()
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	n.Close(context.Background())
}

func TestStdoutSink(t *testing.T) {
	p := &packet.Packet{ID: "00000000-0000-4000-8000-000000000000", TS: "2026-02-14T00:00:00+00:00", Kind: "event", SourceID: "s",
		Payload: packet.MapOf("msg", "grüße", "n", int64(1)), Meta: packet.MapOf("k", "v")}
	tests := []struct {
		name string
		cfg  *packet.Map
		want string
	}{
		{"whole packet", nil, `{"packet_id":"00000000-0000-4000-8000-000000000000","ts":"2026-02-14T00:00:00+00:00","kind":"event","source_id":"s","payload":{"msg":"grüße","n":1},"meta":{"k":"v"}}` + "\n"},
		{"payload only", packet.MapOf("payload_only", true), `{"msg":"grüße","n":1}` + "\n"},
		{"ascii", packet.MapOf("payload_only", true, "ensure_ascii", true), `{"msg":"gr\u00fc\u00dfe","n":1}` + "\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			n := build(t, "StdoutSink", tt.cfg, plugin.Env{Stdout: &out})
			plugintest.Process(t, n, p, p)
			if got := out.String(); got != tt.want+tt.want {
				t.Fatalf("got  %s\nwant %s", got, tt.want+tt.want)
			}
		})
	}
}
