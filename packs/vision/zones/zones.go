// Package zones decides whether an event's rule point lies inside one of a
// camera's zone polygons, with upstream's exact geometry (boundary counts as
// inside, even-odd ray casting with its tolerances and quirks), and loads
// zone lists from inline config, a JSON/YAML file or an HTTP API.
package zones

import (
	"fmt"
	"log/slog"
	"math"
	"math/big"

	"github.com/schnitzel-stream/schnitzel/packet"
)

// Point is a pixel position; y grows downwards.
type Point struct{ X, Y float64 }

// Zone is one zone of a camera.
type Zone struct {
	// ID is zone_id as given (usually a string); "" when absent. It is
	// copied into the result unchanged, as upstream does.
	ID      any
	Enabled bool
	// Polygon holds the vertices of an open ring (the last connects to the
	// first). Nil when the zone's polygon was not a list of at least three
	// vertices: such zones are skipped, as upstream skips them.
	Polygon []Point
}

// Rule point names of rules.rule_point_by_event_type / rule_map.
const (
	BottomCenter = "bottom_center"
	BBoxCenter   = "bbox_center"
)

// isclose is Python's math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9).
func isclose(a, b float64) bool {
	if a == b {
		return true
	}
	if math.IsInf(a, 0) || math.IsInf(b, 0) {
		return false
	}
	d := math.Abs(a - b)
	return d <= 1e-9*math.Abs(b) || d <= 1e-9*math.Abs(a) || d <= 1e-9
}

// PointInPolygon reports whether p lies inside poly or on its boundary,
// step for step as upstream's point_in_polygon (so its quirks survive: a
// vertex whose neighbours both lie above it in y is outside, and the
// +1e-9 bias in the crossing formula can move points on long shallow
// edges). Fewer than three vertices is never inside.
func PointInPolygon(p Point, poly []Point) bool {
	n := len(poly)
	if n < 3 {
		return false
	}
	inside := false
	for i := 0; i < n; i++ {
		a, b := poly[i], poly[(i+1)%n]
		if isclose(a.Y, b.Y) && isclose(p.Y, a.Y) && math.Min(a.X, b.X) <= p.X && p.X <= math.Max(a.X, b.X) {
			return true // on a horizontal edge
		}
		if (a.Y > p.Y) != (b.Y > p.Y) {
			xc := (b.X-a.X)*(p.Y-a.Y)/(b.Y-a.Y+1e-9) + a.X
			if isclose(xc, p.X) {
				return true // on the edge
			}
			if xc > p.X {
				inside = !inside
			}
		}
	}
	return inside
}

// RulePoint returns the point of bbox that rules[eventType] names:
// bbox_center is the box centre, anything else (bottom_center, the
// default) the middle of the bottom edge. ok is false when bbox is not a
// non-empty mapping with all four coordinates non-null. A coordinate that
// is not a number is an error (upstream raised TypeError).
func RulePoint(eventType string, bbox any, rules map[string]string) (pt Point, ok bool, err error) {
	m, isMap := bbox.(*packet.Map)
	if !isMap || m.Len() == 0 {
		return Point{}, false, nil
	}
	var c [4]float64
	for i, k := range [4]string{"x1", "y1", "x2", "y2"} {
		v, _ := m.Get(k)
		if v == nil {
			return Point{}, false, nil
		}
		f, isNum := number(v)
		if !isNum {
			return Point{}, false, fmt.Errorf("bbox.%s is not a number: %s", k, packet.PyStr(v))
		}
		c[i] = f
	}
	if rules[eventType] == BBoxCenter {
		return Point{(c[0] + c[2]) / 2, (c[1] + c[3]) / 2}, true, nil
	}
	return Point{(c[0] + c[2]) / 2, c[3]}, true, nil
}

// number reads a JSON-like number the way Python arithmetic sees it
// (booleans are 0 and 1).
func number(v any) (float64, bool) {
	switch x := v.(type) {
	case int64:
		return float64(x), true
	case float64:
		return x, true
	case int:
		return float64(x), true
	case bool:
		if x {
			return 1, true
		}
		return 0, true
	case *big.Int:
		f, _ := new(big.Float).SetInt(x).Float64()
		return f, true
	}
	return 0, false
}

// Result returns the zone object of an event: {"zone_id": id, "inside": in}.
func Result(id any, in bool) *packet.Map { return packet.MapOf("zone_id", id, "inside", in) }

// Evaluate returns the zone result for an event: the first enabled zone
// (in list order) whose polygon contains the rule point, else
// {"zone_id": "", "inside": false}.
func Evaluate(eventType string, bbox any, zs []Zone, rules map[string]string) (*packet.Map, error) {
	pt, ok, err := RulePoint(eventType, bbox, rules)
	if err != nil || !ok {
		return Result("", false), err
	}
	for i := range zs {
		z := &zs[i]
		if !z.Enabled || z.Polygon == nil {
			continue
		}
		if PointInPolygon(pt, z.Polygon) {
			return Result(z.ID, true), nil
		}
	}
	return Result("", false), nil
}

// Parse reads a zone list (JSON-like values: a list of mappings with
// zone_id, enabled, polygon). A zone that is not a mapping, or a vertex
// that is not an [x, y] pair of numbers, is an error naming the zone; a
// polygon that is not a list of at least three vertices makes the zone
// skipped (upstream's ZONES_INVALID_POLYGON warning), reported through
// log when it is not nil.
func Parse(v any, log *slog.Logger) ([]Zone, error) {
	list, ok := v.([]any)
	if !ok {
		return nil, fmt.Errorf("zones: expected a list, got %s", kindOf(v))
	}
	out := make([]Zone, 0, len(list))
	for i, item := range list {
		m, ok := item.(*packet.Map)
		if !ok {
			return nil, fmt.Errorf("zones[%d]: expected a mapping, got %s", i, kindOf(item))
		}
		z := Zone{ID: "", Enabled: true}
		if id, has := m.Get("zone_id"); has {
			z.ID = id
		}
		name := fmt.Sprintf("zones[%d] (zone_id %s)", i, packet.PyStr(z.ID))
		if en, has := m.Get("enabled"); has {
			z.Enabled = truthy(en)
		}
		raw, _ := m.Get("polygon")
		poly, isList := raw.([]any)
		if !isList || len(poly) < 3 {
			if log != nil {
				log.Warn("invalid zone polygon, skipping", "error_code", "ZONES_INVALID_POLYGON", "zone", name)
			}
			out = append(out, z)
			continue
		}
		z.Polygon = make([]Point, len(poly))
		for j, vert := range poly {
			xy, isList := vert.([]any)
			if !isList || len(xy) != 2 {
				return nil, fmt.Errorf("%s: polygon[%d]: expected an [x, y] pair, got %s", name, j, packet.PyStr(vert))
			}
			x, okx := number(xy[0])
			y, oky := number(xy[1])
			if !okx || !oky || math.IsNaN(x) || math.IsNaN(y) {
				return nil, fmt.Errorf("%s: polygon[%d]: coordinates must be numbers, got %s", name, j, packet.PyStr(vert))
			}
			z.Polygon[j] = Point{x, y}
		}
		out = append(out, z)
	}
	return out, nil
}

// truthy is Python's truthiness for the enabled flag, except that the
// strings false/no/off/0 mean false (upstream treated "false" as true).
func truthy(v any) bool {
	switch x := v.(type) {
	case nil:
		return false
	case bool:
		return x
	case int64:
		return x != 0
	case float64:
		return x != 0
	case string:
		switch x {
		case "false", "False", "FALSE", "no", "No", "off", "0", "":
			return false
		}
		return true
	case []any:
		return len(x) > 0
	case *packet.Map:
		return x.Len() > 0
	}
	return true
}

func kindOf(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case *packet.Map:
		return "a mapping"
	case []any:
		return "a list"
	case string:
		return "a string"
	case bool:
		return "a boolean"
	}
	return "a number"
}
