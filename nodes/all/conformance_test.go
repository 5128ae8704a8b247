package all_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/schnitzel-stream/schnitzel/nodes/all"
	"github.com/schnitzel-stream/schnitzel/nodes/mqtt/mqtttest"
	"github.com/schnitzel-stream/schnitzel/nodes/nats/natstest"
	"github.com/schnitzel-stream/schnitzel/packet"
	"github.com/schnitzel-stream/schnitzel/packs/vision/detect/adaptertest"
	"github.com/schnitzel-stream/schnitzel/packs/vision/frame"
	"github.com/schnitzel-stream/schnitzel/plugin/plugintest"
)

// TestMain lets the test binary be the model adapter of the detector
// fixtures (adaptertest's helper-process pattern): no Python needed.
func TestMain(m *testing.M) {
	adaptertest.Main()
	os.Exit(m.Run())
}

// TestConformance runs the node contract suite over every built-in node.
// Relative paths in the fixtures land in each node's own temp directory.
func TestConformance(t *testing.T) {
	var posts atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		posts.Add(1)
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(srv.Close)
	adapter := httptest.NewServer(adaptertest.Handler("fixed"))
	t.Cleanup(adapter.Close)

	// A path under a regular file: every Start that opens or creates it
	// fails, whatever the platform.
	blocker := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(blocker, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	under := func(name string) string { return filepath.Join(blocker, name) }
	pkt := func() []*packet.Packet {
		return []*packet.Packet{packet.New("event", "cam01", packet.MapOf("n", int64(1)), "2026-02-14T00:00:00+00:00", nil)}
	}
	frames := func() []*packet.Packet {
		f := frame.New(64, 48)
		return []*packet.Packet{packet.New("frame", "cam01", packet.MapOf("frame", f, "frame_idx", int64(0)), "2026-02-14T00:00:00+00:00",
			packet.MapOf("frame_idx", int64(0)))}
	}
	// A real NATS server with the stream the JetStream source reads.
	ns := natstest.Start(t, natstest.Options{})
	natsStream(t, ns.URL())
	natsURL := ns.URL()
	const (
		nodes  = "schnitzel_stream.nodes."
		vision = "schnitzel_stream.packs.vision.nodes:"
	)
	blobs := func() []*packet.Packet {
		return []*packet.Packet{packet.New("bytes", "cam01", []byte("hello"), "2026-02-14T00:00:00+00:00", nil)}
	}
	blobRef := func() []*packet.Packet { // names a file that is not there: dropped, not failed
		ref := packet.MapOf("scheme", "file", "path", "missing.bin", "content_type", nil, "size_bytes", int64(5))
		return []*packet.Packet{packet.New("bytes_ref", "cam01", packet.MapOf("ref", ref), "2026-02-14T00:00:00+00:00", nil)}
	}
	tailed := filepath.Join(t.TempDir(), "app.log")
	if err := os.WriteFile(tailed, []byte("one\ntwo\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	fixtures := map[string]plugintest.Fixture{
		nodes + "lines:StdinSource":                         {},
		nodes + "lines:StdoutSink":                          {Input: pkt()},
		nodes + "lines:FileTailSource":                      {Config: packet.MapOf("paths", []any{tailed}, "poll_interval_sec", 0.01), StartFails: packet.MapOf("paths", []any{tailed}, "state_dir", under("state"))},
		nodes + "blob_ref:BytesToFileRefNode":               {Config: packet.MapOf("dir", "blobs"), Input: blobs(), StartFails: packet.MapOf("dir", under("blobs"))},
		nodes + "blob_ref:FileRefToBytesNode":               {Config: packet.MapOf("dir", "."), Input: blobRef(), StartFails: packet.MapOf("dir", under("blobs"))},
		nodes + "dev:PrintSink":                             {Input: pkt()},
		nodes + "durable_sqlite:SqliteQueueSink":            {Config: packet.MapOf("path", "q.sqlite3"), Input: pkt(), StartFails: packet.MapOf("path", under("q.sqlite3"))},
		nodes + "durable_sqlite:SqliteQueueAckSink":         {Config: packet.MapOf("path", "q.sqlite3"), Input: pkt(), StartFails: packet.MapOf("path", under("q.sqlite3"))},
		nodes + "durable_sqlite:SqliteQueueSource":          {Config: packet.MapOf("path", "q.sqlite3", "follow", true), StartFails: packet.MapOf("path", under("q.sqlite3"))},
		nodes + "event_builder:ProtocolV02EventBuilderNode": {Config: packet.MapOf("site_id", "site")},
		nodes + "file_sink:JsonFileSink":                    {Input: pkt(), StartFails: packet.MapOf("dir", under("out"))},
		nodes + "file_sink:JsonlSink":                       {Config: packet.MapOf("path", "out.jsonl"), Input: pkt(), StartFails: packet.MapOf("path", under("out.jsonl"))},
		nodes + "nats:JetStreamSink":                        {Config: packet.MapOf("url", natsURL, "subject", "conf.{source_id}", "stream", "CONF"), Input: pkt(), StartFails: packet.MapOf("url", natsURL, "subject", "other.x", "stream", "CONF")},
		nodes + "nats:JetStreamSource":                      {Config: packet.MapOf("url", natsURL, "stream", "CONF", "durable", "conf"), StartFails: packet.MapOf("url", natsURL, "stream", "MISSING", "durable", "conf")},
		nodes + "nats:NatsSink":                             {Config: packet.MapOf("url", natsURL, "subject", "core.{source_id}"), Input: pkt()},
		nodes + "nats:NatsSource":                           {Config: packet.MapOf("url", natsURL, "subject", "core.>")},
		nodes + "http:HttpJsonSink":                         {Config: packet.MapOf("url", srv.URL), Input: pkt()},
		nodes + "http:HttpServerSource":                     {Config: packet.MapOf("listen", "127.0.0.1:0"), StartFails: packet.MapOf("listen", "127.0.0.1:0", "tls_cert_file", under("cert.pem"), "tls_key_file", under("key.pem"))},
		nodes + "map:Mapping":                               {Config: packet.MapOf("set", packet.MapOf("payload.m", "payload.n * 2")), Input: pkt()},
		nodes + "map:Filter":                                {Config: packet.MapOf("condition", "payload.n > 0"), Input: pkt()},
		nodes + "map:Switch":                                {Config: packet.MapOf("cases", []any{packet.MapOf("port", "one", "condition", "payload.n == 1")}), Input: pkt()},
		nodes + "map:Dedupe":                                {Input: pkt()},
		nodes + "map:RateLimit":                             {Config: packet.MapOf("key", "source_id", "on_limit", "delay", "burst", int64(1)), Input: append(pkt(), pkt()...)},
		nodes + "map:Split":                                 {Config: packet.MapOf("field", "payload.items"), Input: []*packet.Packet{packet.New("event", "cam01", packet.MapOf("items", []any{int64(1), int64(2)}), "2026-02-14T00:00:00+00:00", nil)}},
		nodes + "map:Batch":                                 {Config: packet.MapOf("count", int64(2), "period_sec", 0.01, "key", "source_id"), Input: append(pkt(), pkt()...)},
		nodes + "map:Window":                                {Config: packet.MapOf("size_sec", 1.0, "key", "source_id", "aggregates", packet.MapOf("n", packet.MapOf("op", "sum", "expr", "payload.n"))), Input: append(pkt(), pkt()...)},
		nodes + "map:Merge":                                 {Input: append(pkt(), pkt()...)},
		nodes + "video:OpenCvVideoFileSource":               videoFixture(t),
		vision + "OpenCvBboxDisplaySink":                    {Config: packet.MapOf("output_dir", "frames"), Input: frames(), StartFails: packet.MapOf("output_dir", under("frames"))},
		nodes + "video:EveryNthFrameSamplerNode":            {Input: frames()},
		nodes + "mock_detection:MockDetectorNode":           {Input: frames()},
		vision + "EventSnapshotNode":                        {Config: packet.MapOf("base_dir", "snapshots")},
		vision + "ModelAdapterDetectorNode":                 {Config: packet.MapOf("command", []any{os.Args[0]}, "env", packet.MapOf(adaptertest.EnvMode, "fixed")), Input: frames()},
		vision + "YoloV8DetectorNode":                       {Config: packet.MapOf("url", adapter.URL), Input: frames()},
		vision + "OpenCvRtspSource":                         {Config: packet.MapOf("url", "rtsp://127.0.0.1:1/none")},
		nodes + "exec:ProcessNode":                          {Config: packet.MapOf("command", []any{"sh", "-c", shNode}), Input: pkt(), StartFails: packet.MapOf("command", "./no-such-plugin")},
		nodes + "exec:ProcessSink":                          {Config: packet.MapOf("command", []any{"sh", "-c", shNode}), Input: pkt(), StartFails: packet.MapOf("command", "./no-such-plugin")},
		nodes + "exec:ProcessSource":                        {Config: packet.MapOf("command", []any{"sh", "-c", shSource}), StartFails: packet.MapOf("command", "./no-such-plugin")},
	}
	for name, f := range mqttFixtures(t, pkt) {
		fixtures[name] = f
	}
	plugintest.Conformance(t, all.Registry(), fixtures)
	if posts.Load() == 0 {
		t.Error("no node posted to the loopback server: the HTTP sink's fixture does not exercise its client")
	}
}

// Plugins in sh for the exec nodes' fixtures (docs/plugin-protocol.md): a
// node that answers every packet with nothing, and a source that emits
// packets until it is closed.
const (
	shNode = `echo '{"type":"hello","protocol":1}'
while read -r line; do
  case "$line" in
  *'"type":"config"'*) echo '{"type":"ready"}' ;;
  *'"type":"packet"'*) id=${line#*'"id":'}; id=${id%%,*}; echo '{"type":"result","id":'"$id"',"packets":[]}' ;;
  *'"type":"close"'*) exit 0 ;;
  esac
done`
	shSource = `echo '{"type":"hello","protocol":1}'
read -r line
echo '{"type":"ready"}'
while :; do echo '{"type":"emit","packet":{"kind":"event","payload":{"n":1}}}' || exit 0; done`
)

// videoFixture renders a one-second clip for the file source, or exempts
// it where ffmpeg is missing (the source needs it to start).
func videoFixture(t *testing.T) plugintest.Fixture {
	for _, b := range []string{"ffmpeg", "ffprobe"} {
		if _, err := exec.LookPath(b); err != nil {
			return plugintest.Fixture{Exempt: b + " not in PATH"}
		}
	}
	path := filepath.Join(t.TempDir(), "clip.mp4")
	out, err := exec.Command("ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-y",
		"-f", "lavfi", "-i", "testsrc=size=64x48:rate=10:duration=1", "-pix_fmt", "yuv420p", path).CombinedOutput()
	if err != nil {
		t.Fatalf("ffmpeg: %v\n%s", err, out)
	}
	return plugintest.Fixture{Config: packet.MapOf("path", path, "loop", true), StartFails: packet.MapOf("path", path+".missing")}
}

// natsStream creates the stream CONF (subjects conf.>) for the JetStream
// fixtures.
func natsStream(t *testing.T, url string) {
	t.Helper()
	_, js := natstest.Client(t, url)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "CONF", Subjects: []string{"conf.>"}}); err != nil {
		t.Fatal(err)
	}
}

// mqttFixtures run the MQTT nodes against a real mosquitto, or exempt them
// where it is not installed.
func mqttFixtures(t *testing.T, pkt func() []*packet.Packet) map[string]plugintest.Fixture {
	const mod = "schnitzel_stream.nodes.mqtt:"
	if mqtttest.Binary() == "" {
		return map[string]plugintest.Fixture{
			mod + "MqttSource": {Exempt: "mosquitto not installed"},
			mod + "MqttSink":   {Exempt: "mosquitto not installed"},
		}
	}
	b := mqtttest.Start(t, mqtttest.Options{})
	return map[string]plugintest.Fixture{
		mod + "MqttSource": {Config: packet.MapOf("url", b.URL("tcp"), "topic", "conformance/#"),
			StartFails: packet.MapOf("url", b.URL("ssl"), "topic", "x", "tls_ca_file", "missing-ca.pem")},
		mod + "MqttSink": {Config: packet.MapOf("url", b.URL("tcp"), "topic", "conformance/{source_id}"), Input: pkt(),
			StartFails: packet.MapOf("url", b.URL("ssl"), "topic", "x", "tls_ca_file", "missing-ca.pem")},
	}
}
