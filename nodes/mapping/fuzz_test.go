package mapping_test

import (
	"testing"

	"github.com/schnitzel-stream/schnitzel/packet"
	"github.com/schnitzel-stream/schnitzel/plugin"
)

// FuzzMappingConfig feeds arbitrary expressions and paths through
// validation and, when they compile, through one packet: nothing may
// panic, and what validation accepts must build.
func FuzzMappingConfig(f *testing.F) {
	for _, s := range []string{"payload.a + 1", "(payload.t + ))", `payload?.x ?? "d"`, "filter(payload.l, .v > 1)",
		"keys(payload)", `"a" in payload`, "payload.l[-1]", "to_json(payload)", "round(1.5, 2)", "{'a': [1, 2]}"} {
		f.Add("payload.out", s)
	}
	f.Add("meta.x.y", "1")
	f.Add("payload", "payload.l")
	e, _ := reg().Lookup(mod + "Mapping")
	in := pkt(packet.MapOf("a", int64(1), "t", 2.5, "l", []any{packet.MapOf("v", int64(2)), "s"}), packet.MapOf("m", "x"))
	f.Fuzz(func(t *testing.T, path, src string) {
		dec, _, errs := e.Decode(packet.MapOf("set", packet.MapOf(path, src)))
		if len(errs) > 0 {
			return
		}
		n, err := e.Build(dec, plugin.Env{NodeID: "fuzz"})
		if err != nil {
			t.Fatalf("validated but did not build: %v", err)
		}
		_ = n.(plugin.Processor).Process(t.Context(), in, &discard{})
	})
}
