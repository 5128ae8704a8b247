package mapping

import (
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/expr-lang/expr"
	"github.com/google/uuid"

	"github.com/schnitzel-stream/schnitzel/packet"
)

// helpers are the functions added to expr's builtins (docs/processing.md);
// round replaces expr's one-argument round with round(x[, digits]).
func helpers() []expr.Option {
	type fn struct {
		name  string
		f     func(a ...any) (any, error)
		types []any
	}
	fns := []fn{
		{"has_prefix", func(a ...any) (any, error) { return strings.HasPrefix(a[0].(string), a[1].(string)), nil },
			[]any{strings.HasPrefix}},
		{"has_suffix", func(a ...any) (any, error) { return strings.HasSuffix(a[0].(string), a[1].(string)), nil },
			[]any{strings.HasSuffix}},
		{"parse_time", func(a ...any) (any, error) { return parseTime(a...) },
			[]any{new(func(string) time.Time), new(func(string, string) time.Time)}},
		{"format_time", func(a ...any) (any, error) { return formatTime(a...) },
			[]any{new(func(any) string), new(func(any, string) string)}},
		{"to_json", func(a ...any) (any, error) { return toJSON(a[0]) }, []any{new(func(any) string)}},
		{"from_json", func(a ...any) (any, error) { return packet.DecodeJSON([]byte(a[0].(string))) }, []any{new(func(string) any)}},
		{"sha256", func(a ...any) (any, error) {
			h := sha256.Sum256(bytesOf(a[0]))
			return hex.EncodeToString(h[:]), nil
		}, []any{new(func(any) string)}},
		{"md5", func(a ...any) (any, error) {
			h := md5.Sum(bytesOf(a[0]))
			return hex.EncodeToString(h[:]), nil
		}, []any{new(func(any) string)}},
		{"uuid_v5", func(a ...any) (any, error) { return uuidV5(a[0].(string), a[1].(string)) }, []any{new(func(string, string) string)}},
		{"round", func(a ...any) (any, error) { return round(a...) }, []any{new(func(any) float64), new(func(any, int) float64)}},
	}
	out := make([]expr.Option, 0, len(fns))
	for _, f := range fns {
		out = append(out, expr.Function(f.name, f.f, f.types...))
	}
	return out
}

func bytesOf(v any) []byte {
	switch x := v.(type) {
	case string:
		return []byte(x)
	case []byte:
		return x
	}
	return []byte(fmt.Sprint(v))
}

// timeLayouts are names for common layouts; anything else is a Go layout.
var timeLayouts = map[string]string{
	"":         time.RFC3339Nano,
	"rfc3339":  time.RFC3339Nano,
	"iso8601":  time.RFC3339Nano,
	"rfc1123":  time.RFC1123,
	"date":     time.DateOnly,
	"datetime": time.DateTime,
}

func layoutOf(a []any) string {
	if len(a) < 2 {
		return time.RFC3339Nano
	}
	l := a[1].(string)
	if n, ok := timeLayouts[strings.ToLower(l)]; ok {
		return n
	}
	return l
}

func parseTime(a ...any) (any, error) {
	t, err := time.Parse(layoutOf(a), a[0].(string))
	if err != nil {
		return nil, fmt.Errorf("parse_time: %w", err)
	}
	return t, nil
}

// formatTime takes a time, an RFC 3339 string (ts) or Unix seconds.
func formatTime(a ...any) (any, error) {
	var t time.Time
	switch x := a[0].(type) {
	case time.Time:
		t = x
	case string:
		var err error
		if t, err = time.Parse(time.RFC3339Nano, x); err != nil {
			return nil, fmt.Errorf("format_time: %w", err)
		}
	case int, int64, float64:
		f := toFloat(x)
		sec, frac := math.Modf(f)
		t = time.Unix(int64(sec), int64(frac*1e9)).UTC()
	default:
		return nil, fmt.Errorf("format_time: want a time, a timestamp string or Unix seconds, got %s", typeOf(a[0]))
	}
	return t.Format(layoutOf(a)), nil
}

func toFloat(v any) float64 {
	switch x := v.(type) {
	case int:
		return float64(x)
	case int64:
		return float64(x)
	case float64:
		return x
	}
	return math.NaN()
}

func toJSON(v any) (any, error) {
	v, err := toPacket(v)
	if err != nil {
		return nil, fmt.Errorf("to_json: %w", err)
	}
	b, err := packet.AppendJSONOpts(nil, v, packet.JSONOptions{Style: packet.Style{Item: ",", Key: ":"}, Strict: true})
	if err != nil {
		return nil, fmt.Errorf("to_json: %w", err)
	}
	return string(b), nil
}

var uuidNamespaces = map[string]uuid.UUID{
	"dns": uuid.NameSpaceDNS, "url": uuid.NameSpaceURL, "oid": uuid.NameSpaceOID, "x500": uuid.NameSpaceX500,
}

func uuidV5(ns, name string) (any, error) {
	u, ok := uuidNamespaces[strings.ToLower(ns)]
	if !ok {
		var err error
		if u, err = uuid.Parse(ns); err != nil {
			return nil, fmt.Errorf("uuid_v5: namespace %q is neither a UUID nor dns/url/oid/x500", ns)
		}
	}
	return uuid.NewSHA1(u, []byte(name)).String(), nil
}

func round(a ...any) (any, error) {
	x := toFloat(a[0])
	if math.IsNaN(x) {
		return nil, errors.New("round: want a number")
	}
	n := 0
	if len(a) > 1 {
		n = a[1].(int)
	}
	if n < 0 || n > 15 {
		return nil, fmt.Errorf("round: digits must be 0..15, got %d", n)
	}
	p := math.Pow10(n)
	return math.Round(x*p) / p, nil
}
