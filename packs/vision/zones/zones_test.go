package zones

import (
	"strings"
	"testing"

	"github.com/schnitzel-stream/schnitzel/packet"
)

func poly(xy ...float64) []Point {
	out := make([]Point, 0, len(xy)/2)
	for i := 0; i < len(xy); i += 2 {
		out = append(out, Point{xy[i], xy[i+1]})
	}
	return out
}

// Every expectation below was produced by upstream's point_in_polygon
// (src/schnitzel_stream/policy/zones.py@0ff8387), quirks included.
func TestPointInPolygonMatchesUpstream(t *testing.T) {
	sq := poly(0, 0, 10, 0, 10, 10, 0, 10)
	tri := poly(0, 0, 5, 10, 10, 0)
	shallow := poly(0, 0, 10000, 1, 0, 1)
	mirror := poly(0, 1, 10000, 0, 0, 0)
	conc := poly(0, 0, 10, 0, 10, 10, 5, 5, 0, 10)
	fl := poly(0.5, 0.5, 2.25, 0.5, 2.25, 3.75, 0.5, 3.75)
	cases := []struct {
		name string
		poly []Point
		x, y float64
		want bool
	}{
		{"square centre", sq, 5, 5, true},
		{"square outside", sq, 15, 5, false},
		{"square corner origin", sq, 0, 0, true},
		{"square far corner", sq, 10, 10, true},
		{"square bottom edge", sq, 5, 0, true},
		{"square top edge", sq, 5, 10, true},
		{"square left edge", sq, 0, 5, true},
		{"square right edge", sq, 10, 5, true},
		{"square right edge within tolerance", sq, 10.000000001, 5, true},
		{"square left edge within tolerance", sq, -1e-10, 5, true},
		{"square bottom edge within tolerance", sq, 5, -1e-10, true},
		{"square above top beyond tolerance", sq, 5, 10.00000001, false},
		{"square right beyond tolerance", sq, 10.00000001, 5, false},
		{"square corner 0,10", sq, 0, 10, true},
		{"square corner 10,0", sq, 10, 0, true},
		{"triangle apex with both neighbours below is outside (quirk)", tri, 5, 10, false},
		{"triangle just under apex", tri, 5, 9.999, true},
		{"triangle centre", tri, 5, 5, true},
		{"triangle base vertex left", tri, 0, 0, true},
		{"triangle base vertex right", tri, 10, 0, true},
		{"triangle left edge", tri, 2.5, 5, true},
		{"triangle right edge", tri, 7.5, 5, true},
		{"triangle base", tri, 5, 0, true},
		{"triangle above apex", tri, 5, 10.0000001, false},
		{"triangle inside", tri, 1, 1, true},
		{"long shallow edge: bias moves the boundary (quirk)", shallow, 5000, 0.5, false},
		{"long shallow edge just below", shallow, 5000, 0.4999, false},
		{"long shallow edge above", shallow, 5000, 0.51, true},
		{"shallow polygon inside", shallow, 1, 0.5, true},
		{"mirrored shallow edge point", mirror, 5000, 0.5, true},
		{"mirrored shallow inside", mirror, 5000, 0.49, true},
		{"concave notch vertex", conc, 5, 5, true},
		{"concave notch", conc, 5, 6, false},
		{"concave below notch", conc, 5, 4, true},
		{"concave left lobe", conc, 2, 7, true},
		{"concave right lobe", conc, 8, 7, true},
		{"concave notch higher", conc, 5, 7.5, false},
		{"concave left notch edge", conc, 2.5, 7.5, true},
		{"concave right notch edge", conc, 7.5, 7.5, true},
		{"fractional inside", fl, 1, 1, true},
		{"fractional left edge", fl, 0.5, 2, true},
		{"fractional corner", fl, 2.25, 3.75, true},
		{"fractional just right", fl, 2.2500001, 2, false},
		{"fractional outside", fl, 3, 3, false},
		{"two vertices never inside", poly(0, 0, 1, 1), 0, 0, false},
	}
	for _, c := range cases {
		if got := PointInPolygon(Point{c.x, c.y}, c.poly); got != c.want {
			t.Errorf("%s: (%v, %v) = %v, want %v", c.name, c.x, c.y, got, c.want)
		}
	}
}

func bbox(x1, y1, x2, y2 any) *packet.Map {
	return packet.MapOf("x1", x1, "y1", y1, "x2", x2, "y2", y2)
}

func TestRulePoint(t *testing.T) {
	rules := map[string]string{"FIRE": BBoxCenter, "Z": BottomCenter, "ODD": "top_left"}
	cases := []struct {
		name, et string
		bbox     any
		want     Point
		ok       bool
		err      string
	}{
		{"default bottom centre", "X", bbox(int64(2), int64(2), int64(4), int64(4)), Point{3, 4}, true, ""},
		{"explicit bottom centre", "Z", bbox(int64(2), int64(2), int64(5), int64(8)), Point{3.5, 8}, true, ""},
		{"bbox centre", "FIRE", bbox(int64(2), int64(2), int64(5), int64(8)), Point{3.5, 5}, true, ""},
		{"unknown rule acts as bottom centre", "ODD", bbox(0.0, 0.0, 2.0, 2.0), Point{1, 2}, true, ""},
		{"missing coordinate", "X", packet.MapOf("x1", int64(1), "y1", int64(1), "x2", int64(1)), Point{}, false, ""},
		{"null coordinate", "X", bbox(int64(1), nil, int64(1), int64(1)), Point{}, false, ""},
		{"empty bbox", "X", packet.NewMap(0), Point{}, false, ""},
		{"bbox not a mapping", "X", []any{int64(1)}, Point{}, false, ""},
		{"no bbox", "X", nil, Point{}, false, ""},
		{"string coordinate", "X", bbox("1", int64(1), int64(1), int64(1)), Point{}, false, "bbox.x1 is not a number"},
	}
	for _, c := range cases {
		got, ok, err := RulePoint(c.et, c.bbox, rules)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%s: err %v, want %q", c.name, err, c.err)
			}
			continue
		}
		if err != nil || ok != c.ok || got != c.want {
			t.Errorf("%s: %v %v %v, want %v %v", c.name, got, ok, err, c.want, c.ok)
		}
	}
}

func mustParse(t *testing.T, v any) []Zone {
	t.Helper()
	zs, err := Parse(v, nil)
	if err != nil {
		t.Fatal(err)
	}
	return zs
}

func square(id any, x0, y0, s int64, extra ...any) *packet.Map {
	m := packet.MapOf("zone_id", id, "polygon", []any{
		[]any{x0, y0}, []any{x0 + s, y0}, []any{x0 + s, y0 + s}, []any{x0, y0 + s}})
	for i := 0; i < len(extra); i += 2 {
		m.Set(extra[i].(string), extra[i+1])
	}
	return m
}

func TestEvaluate(t *testing.T) {
	zs := mustParse(t, []any{
		square("OFF", 0, 0, 100, "enabled", false),
		packet.MapOf("zone_id", "BAD", "polygon", []any{[]any{int64(0), int64(0)}, []any{int64(1), int64(1)}}),
		packet.MapOf("zone_id", "NOPOLY"),
		square("A", 0, 0, 10),
		square("B", 5, 5, 10),
		square(int64(7), 50, 50, 10),
		packet.MapOf("polygon", []any{[]any{int64(80), int64(80)}, []any{90.0, int64(80)}, []any{int64(85), int64(90)}}),
	})
	cases := []struct {
		name string
		bbox any
		id   any
		in   bool
	}{
		{"first matching zone wins, disabled and invalid skipped", bbox(int64(6), int64(0), int64(8), int64(8)), "A", true},
		{"second zone", bbox(int64(12), int64(0), int64(14), int64(12)), "B", true},
		{"numeric zone id kept", bbox(int64(54), int64(0), int64(56), int64(55)), int64(7), true},
		{"zone without id gives empty id", bbox(int64(84), int64(0), int64(86), int64(85)), "", true},
		{"outside all", bbox(int64(200), int64(0), int64(300), int64(300)), "", false},
		{"no rule point", nil, "", false},
	}
	for _, c := range cases {
		res, err := Evaluate("ZONE_INTRUSION", c.bbox, zs, nil)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		id, _ := res.Get("zone_id")
		in, _ := res.Get("inside")
		if id != c.id || in != c.in {
			t.Errorf("%s: {%v %v}, want {%v %v}", c.name, id, in, c.id, c.in)
		}
		if keys := strings.Join(res.Keys(), ","); keys != "zone_id,inside" {
			t.Errorf("%s: key order %s", c.name, keys)
		}
	}
}

func TestParseEnabledAndErrors(t *testing.T) {
	enabled := []struct {
		v    any
		want bool
	}{
		{true, true}, {false, false}, {nil, false}, {int64(0), false}, {int64(1), true},
		{"false", false}, {"no", false}, {"", false}, {"yes", true}, {"true", true},
	}
	for _, c := range enabled {
		zs := mustParse(t, []any{square("Z", 0, 0, 1, "enabled", c.v)})
		if zs[0].Enabled != c.want {
			t.Errorf("enabled %#v -> %v, want %v", c.v, zs[0].Enabled, c.want)
		}
	}
	bad := []struct {
		name string
		v    any
		err  string
	}{
		{"not a list", packet.NewMap(0), "expected a list"},
		{"zone not a mapping", []any{"Z1"}, "zones[0]: expected a mapping"},
		{"vertex of three numbers", []any{packet.MapOf("zone_id", "Z9", "polygon", []any{
			[]any{int64(0), int64(0)}, []any{int64(1), int64(0), int64(2)}, []any{int64(1), int64(1)}})},
			`zones[0] (zone_id Z9): polygon[1]: expected an [x, y] pair`},
		{"string coordinate", []any{packet.MapOf("zone_id", "Z2", "polygon", []any{
			[]any{int64(0), int64(0)}, []any{int64(1), int64(0)}, []any{"a", int64(1)}})},
			`zones[0] (zone_id Z2): polygon[2]: coordinates must be numbers`},
		{"vertex a mapping", []any{packet.MapOf("zone_id", "Z3", "polygon", []any{
			packet.MapOf("x", int64(0)), []any{int64(1), int64(0)}, []any{int64(1), int64(1)}})},
			`zones[0] (zone_id Z3): polygon[0]`},
	}
	for _, c := range bad {
		_, err := Parse(c.v, nil)
		if err == nil || !strings.Contains(err.Error(), c.err) {
			t.Errorf("%s: err %v, want %q", c.name, err, c.err)
		}
	}
}

func BenchmarkEvaluate(b *testing.B) {
	zs, err := Parse([]any{
		square("A", 100, 100, 50), square("B", 300, 300, 50),
		packet.MapOf("zone_id", "C", "polygon", []any{
			[]any{int64(0), int64(0)}, []any{int64(1000), int64(0)}, []any{int64(1000), int64(500)},
			[]any{int64(500), int64(700)}, []any{int64(0), int64(500)}}),
	}, nil)
	if err != nil {
		b.Fatal(err)
	}
	box := bbox(int64(400), int64(200), int64(460), int64(380))
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if res, _ := Evaluate("ZONE_INTRUSION", box, zs, nil); res.Len() != 2 {
			b.Fatal("bad result")
		}
	}
}
