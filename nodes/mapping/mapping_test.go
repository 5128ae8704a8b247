package mapping_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/schnitzel-stream/schnitzel/nodes/mapping"
	"github.com/schnitzel-stream/schnitzel/packet"
	"github.com/schnitzel-stream/schnitzel/plugin"
	"github.com/schnitzel-stream/schnitzel/plugin/plugintest"
)

func reg() *plugin.Registry {
	r := plugin.NewRegistry()
	mapping.Register(r)
	return r
}

const mod = "schnitzel_stream.nodes.map:"

func pkt(payload any, meta *packet.Map) *packet.Packet {
	return packet.New("event", "cam01", payload, "2026-02-14T00:00:00+00:00", meta)
}

func json(t *testing.T, v any) string {
	t.Helper()
	b, err := packet.AppendJSONOpts(nil, v, packet.JSONOptions{Style: packet.Style{Item: ",", Key: ":"}, Strict: true})
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestMapping(t *testing.T) {
	in := func() *packet.Packet {
		return pkt(packet.MapOf("a", int64(2), "b", 3.5, "name", "Cam One", "nested", packet.MapOf("x", int64(1)),
			"items", []any{packet.MapOf("v", int64(1)), packet.MapOf("v", int64(5))}, "a b", "spaced"),
			packet.MapOf("site", "s1"))
	}
	cases := []struct {
		name    string
		cfg     *packet.Map
		payload string // JSON of the output payload
		meta    string
		kind    string
	}{
		{"arithmetic", packet.MapOf("set", packet.MapOf("payload.total", "payload.a + payload.b")),
			`{"a":2,"b":3.5,"name":"Cam One","nested":{"x":1},"items":[{"v":1},{"v":5}],"a b":"spaced","total":5.5}`, `{"site":"s1"}`, "event"},
		{"later sets see earlier", packet.MapOf("set", packet.MapOf("payload", "{'n': payload.a}", "payload.m", "payload.n * 10")),
			`{"n":2,"m":20}`, `{"site":"s1"}`, "event"},
		{"nested create and index", packet.MapOf("set", packet.MapOf("payload.nested.y", "payload.items[-1].v", "payload.new.deep", `payload["a b"]`)),
			`{"a":2,"b":3.5,"name":"Cam One","nested":{"x":1,"y":5},"items":[{"v":1},{"v":5}],"a b":"spaced","new":{"deep":"spaced"}}`, `{"site":"s1"}`, "event"},
		{"meta kind helpers", packet.MapOf("set", packet.MapOf("meta.slug", `lower(replace(payload.name, " ", "-"))`, "kind", `"derived"`,
			"meta.site_up", "upper(meta.site)", "meta.n", "len(payload.items)", "meta.keys", "keys(payload.nested)"), "delete", []any{"payload"}),
			`null`, `{"site":"s1","slug":"cam-one","site_up":"S1","n":2,"keys":["x"]}`, "derived"},
		{"rename and delete", packet.MapOf("rename", packet.MapOf("payload.nested.x", "payload.x", "payload.missing", "payload.y"), "delete", []any{"payload.items", "payload.nested", "payload.nope"}),
			`{"a":2,"b":3.5,"name":"Cam One","a b":"spaced","x":1}`, `{"site":"s1"}`, "event"},
		{"predicates and optional", packet.MapOf("set", packet.MapOf("payload", `{"big": filter(payload.items, .v > 2), "opt": payload.nope?.deep.deeper, "def": payload.nope ?? "d", "has": "a" in payload, "hasnt": "zz" in payload}`)),
			`{"big":[{"v":5}],"def":"d","has":true,"hasnt":false,"opt":null}`, `{"site":"s1"}`, "event"},
		{"own helpers", packet.MapOf("set", packet.MapOf("payload", `{"r": round(3.14159, 2), "h": sha256("abc"), "m": md5("abc"), "u": uuid_v5("dns", "example.com"), "j": to_json(payload.nested), "f": from_json("{\"q\": [1]}").q[0], "p": has_prefix(payload.name, "Cam"), "t": format_time(parse_time("2026-02-14T01:02:03Z"), "date")}`)),
			`{"f":1,"h":"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad","j":"{\"x\":1}","m":"900150983cd24fb0d6963f7d28e17f72","p":true,"r":3.14,"t":"2026-02-14","u":"cfbff0d1-9375-5685-968c-48ce8b15ae17"}`, `{"site":"s1"}`, "event"},
		{"env fields", packet.MapOf("set", packet.MapOf("payload", `[kind, source_id, ts, len(packet_id)]`)),
			`["event","cam01","2026-02-14T00:00:00+00:00",36]`, `{"site":"s1"}`, "event"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			n := plugintest.Build(t, reg(), mod+"Mapping", "node", tc.cfg)
			p := in()
			before := json(t, p.Payload)
			metaBefore := json(t, p.Meta)
			out := plugintest.Process(t, n, p)
			if len(out) != 1 {
				t.Fatalf("got %d packets", len(out))
			}
			q := out[0]
			if got := json(t, q.Payload); got != tc.payload {
				t.Errorf("payload\n got %s\nwant %s", got, tc.payload)
			}
			if got := json(t, q.Meta); got != tc.meta {
				t.Errorf("meta\n got %s\nwant %s", got, tc.meta)
			}
			if q.Kind != tc.kind || q.ID != p.ID || q.TS != p.TS {
				t.Errorf("kind/id/ts: %s %s %s", q.Kind, q.ID, q.TS)
			}
			if json(t, p.Payload) != before || json(t, p.Meta) != metaBefore {
				t.Errorf("the input was changed: %s", json(t, p.Payload))
			}
		})
	}
}

func TestMappingRuntimeErrors(t *testing.T) {
	cases := []struct {
		name, expr, policy string
		wantErr            string // "" : no error from Process
		drop               bool   // the error is a plugin.PacketError
		passed             bool
	}{
		{"divide by zero drops", "payload.a % payload.zero", "drop", "integer divide by zero", true, false},
		{"nil fetch drops", "payload.missing.deep", "drop", "cannot fetch deep from nil", true, false},
		{"error fails", "payload.a % payload.zero", "error", "integer divide by zero", false, false},
		{"pass passes", "payload.missing.deep", "pass", "", false, true},
		{"not storable", "now().Location()", "drop", "cannot go in a packet", true, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			n := plugintest.Build(t, reg(), mod+"Mapping", "node", packet.MapOf("set", packet.MapOf("payload.r", tc.expr), "on_error", tc.policy))
			c := &plugintest.Collector{}
			in := pkt(packet.MapOf("a", int64(1), "zero", int64(0)), nil)
			err := plugintest.ProcessInto(n, c, in)
			var pe *plugin.PacketError
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("error %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("error %v, want %q", err, tc.wantErr)
			case err != nil && errors.As(err, &pe) != tc.drop:
				t.Fatalf("error %v: PacketError %v, want %v", err, !tc.drop, tc.drop)
			case err != nil && !strings.Contains(err.Error(), `node "n"`):
				t.Errorf("error %v does not name the node", err)
			}
			if got := len(c.Packets()); (got == 1) != tc.passed {
				t.Fatalf("%d packets passed", got)
			}
			if tc.passed && c.Packets()[0] != in {
				t.Errorf("pass did not pass the input as it was")
			}
			if m := n.(plugin.Metrics).Metrics(); m[0].Value != 1 {
				t.Errorf("eval_errors_total = %d", m[0].Value)
			}
		})
	}
}

func TestFilter(t *testing.T) {
	cases := []struct {
		cond    string
		in      []any // payload temps
		kept    int
		errors  int64
		dropped int64
	}{
		{"payload.temp > 30", []any{int64(10), 31.5, int64(40)}, 2, 0, 1},
		{`payload.temp > 30 && kind == "event"`, []any{int64(31)}, 1, 0, 0},
		{"payload.temp", []any{true, false, "yes"}, 1, 1, 1}, // "yes" is not a boolean
		{"payload?.temp == nil", []any{nil}, 1, 0, 0},
	}
	for _, tc := range cases {
		t.Run(tc.cond, func(t *testing.T) {
			n := plugintest.Build(t, reg(), mod+"Filter", "node", packet.MapOf("condition", tc.cond))
			c := &plugintest.Collector{}
			for _, v := range tc.in {
				err := plugintest.ProcessInto(n, c, pkt(packet.MapOf("temp", v), nil))
				var pe *plugin.PacketError
				if err != nil && !errors.As(err, &pe) {
					t.Fatal(err)
				}
			}
			if len(c.Packets()) != tc.kept {
				t.Errorf("kept %d, want %d", len(c.Packets()), tc.kept)
			}
			m := n.(plugin.Metrics).Metrics()
			if m[0].Value != int64(tc.kept) || m[1].Value != tc.dropped || m[2].Value != tc.errors {
				t.Errorf("metrics %v", m)
			}
		})
	}
}

func TestSplit(t *testing.T) {
	in := pkt(packet.MapOf("id", "x", "items", []any{int64(1), packet.MapOf("v", int64(2))}), packet.MapOf("site", "s1"))
	cases := []struct {
		cfg      *packet.Map
		payloads []string
		meta     string
	}{
		{packet.MapOf("field", "payload.items"), []string{`1`, `{"v":2}`}, `{"site":"s1"}`},
		{packet.MapOf("field", "payload.items", "as", "payload.item", "index_key", "i"), []string{`{"id":"x","item":1}`, `{"id":"x","item":{"v":2}}`}, `{"site":"s1","i":1}`},
		{packet.MapOf("field", "payload.nope"), nil, ""},
	}
	for _, tc := range cases {
		t.Run(json(t, tc.cfg), func(t *testing.T) {
			n := plugintest.Build(t, reg(), mod+"Split", "node", tc.cfg)
			out := plugintest.Process(t, n, in)
			if len(out) != len(tc.payloads) {
				t.Fatalf("%d packets, want %d", len(out), len(tc.payloads))
			}
			seen := map[string]bool{}
			for i, q := range out {
				if got := json(t, q.Payload); got != tc.payloads[i] {
					t.Errorf("packet %d: %s, want %s", i, got, tc.payloads[i])
				}
				if q.ID == in.ID || seen[q.ID] || q.TS != in.TS || q.Kind != in.Kind {
					t.Errorf("packet %d: id %s ts %s kind %s", i, q.ID, q.TS, q.Kind)
				}
				seen[q.ID] = true
			}
			if len(out) > 0 {
				if got := json(t, out[len(out)-1].Meta); got != tc.meta {
					t.Errorf("meta %s, want %s", got, tc.meta)
				}
			}
			if got := json(t, in.Payload); got != `{"id":"x","items":[1,{"v":2}]}` || json(t, in.Meta) != `{"site":"s1"}` {
				t.Errorf("input changed: %s", got)
			}
		})
	}
	n := plugintest.Build(t, reg(), mod+"Split", "node", packet.MapOf("field", "payload.id"))
	var pe *plugin.PacketError
	if err := plugintest.ProcessInto(n, &plugintest.Collector{}, in); !errors.As(err, &pe) || !strings.Contains(err.Error(), "not a list") {
		t.Errorf("a string field: %v", err)
	}
}

func TestSwitchUnit(t *testing.T) {
	cfg := func(all bool) *packet.Map {
		return packet.MapOf("cases", []any{
			packet.MapOf("port", "hot", "condition", "payload.t > 30"),
			packet.MapOf("port", "warm", "condition", "payload.t > 20"),
		}, "all_matches", all)
	}
	cases := []struct {
		all  bool
		t    int64
		want string
	}{
		{false, 35, "hot"}, {false, 25, "warm"}, {false, 5, "default"}, {true, 35, "hot,warm"},
	}
	for _, tc := range cases {
		n := plugintest.Build(t, reg(), mod+"Switch", "node", cfg(tc.all))
		c := &plugintest.Collector{}
		if err := plugintest.ProcessInto(n, c, pkt(packet.MapOf("t", tc.t), nil)); err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, port := range []string{"", "hot", "warm", "default"} {
			if len(c.ByPort[port]) > 0 {
				got = append(got, port)
			}
		}
		if strings.Join(got, ",") != tc.want {
			t.Errorf("all=%v t=%d: ports %v, want %s", tc.all, tc.t, got, tc.want)
		}
	}
}
