package natsnodes_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/schnitzel-stream/schnitzel/nodes/all"
	"github.com/schnitzel-stream/schnitzel/packet"
	"github.com/schnitzel-stream/schnitzel/plugin"
)

func registry() *plugin.Registry { return all.Registry() }

func streamMsgs(t testing.TB, js jetstream.JetStream, name string) uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, name)
	if err != nil {
		t.Fatalf("stream %s: %v", name, err)
	}
	return s.CachedInfo().State.Msgs
}

func metric(t testing.TB, m *packet.Map, key string) int64 {
	t.Helper()
	v, ok := m.Get(key)
	if !ok {
		t.Fatalf("no metric %s", key)
	}
	return v.(int64)
}

// printedIDs returns the packet ids of the JSON lines a PrintSink wrote
// with prefix.
func printedIDs(t testing.TB, out, prefix string) []string {
	t.Helper()
	var ids []string
	for _, line := range strings.Split(out, "\n") {
		rest, ok := strings.CutPrefix(line, prefix)
		if !ok {
			continue
		}
		v, err := packet.DecodeJSON([]byte(rest))
		if err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		id, _ := v.(*packet.Map).GetString("packet_id")
		ids = append(ids, id)
	}
	return ids
}

func yamlf(format string, args ...any) string { return fmt.Sprintf(format, args...) }
