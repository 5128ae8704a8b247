package all_test

import (
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/schnitzel-stream/schnitzel/nodes/all"
	"github.com/schnitzel-stream/schnitzel/nodes/mqtt/mqtttest"
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
	fixtures := map[string]plugintest.Fixture{
		nodes + "blob_ref:BytesToFileRefNode":               {Config: packet.MapOf("dir", "blobs"), Input: blobs(), StartFails: packet.MapOf("dir", under("blobs"))},
		nodes + "blob_ref:FileRefToBytesNode":               {Config: packet.MapOf("dir", "."), Input: blobRef(), StartFails: packet.MapOf("dir", under("blobs"))},
		nodes + "dev:PrintSink":                             {Input: pkt()},
		nodes + "durable_sqlite:SqliteQueueSink":            {Config: packet.MapOf("path", "q.sqlite3"), Input: pkt(), StartFails: packet.MapOf("path", under("q.sqlite3"))},
		nodes + "durable_sqlite:SqliteQueueAckSink":         {Config: packet.MapOf("path", "q.sqlite3"), Input: pkt(), StartFails: packet.MapOf("path", under("q.sqlite3"))},
		nodes + "durable_sqlite:SqliteQueueSource":          {Config: packet.MapOf("path", "q.sqlite3", "follow", true), StartFails: packet.MapOf("path", under("q.sqlite3"))},
		nodes + "event_builder:ProtocolV02EventBuilderNode": {Config: packet.MapOf("site_id", "site")},
		nodes + "file_sink:JsonFileSink":                    {Input: pkt(), StartFails: packet.MapOf("dir", under("out"))},
		nodes + "file_sink:JsonlSink":                       {Config: packet.MapOf("path", "out.jsonl"), Input: pkt(), StartFails: packet.MapOf("path", under("out.jsonl"))},
		nodes + "http:HttpJsonSink":                         {Config: packet.MapOf("url", srv.URL), Input: pkt()},
		nodes + "video:OpenCvVideoFileSource":               videoFixture(t),
		vision + "OpenCvBboxDisplaySink":                    {Config: packet.MapOf("output_dir", "frames"), Input: frames(), StartFails: packet.MapOf("output_dir", under("frames"))},
		nodes + "video:EveryNthFrameSamplerNode":            {Input: frames()},
		nodes + "mock_detection:MockDetectorNode":           {Input: frames()},
		vision + "EventSnapshotNode":                        {Config: packet.MapOf("base_dir", "snapshots")},
		vision + "ModelAdapterDetectorNode":                 {Config: packet.MapOf("command", []any{os.Args[0]}, "env", packet.MapOf(adaptertest.EnvMode, "fixed")), Input: frames()},
		vision + "YoloV8DetectorNode":                       {Config: packet.MapOf("url", adapter.URL), Input: frames()},
		vision + "OpenCvRtspSource":                         {Config: packet.MapOf("url", "rtsp://127.0.0.1:1/none")},
	}
	for name, f := range mqttFixtures(t, pkt) {
		fixtures[name] = f
	}
	plugintest.Conformance(t, all.Registry(), fixtures)
	if posts.Load() == 0 {
		t.Error("no node posted to the loopback server: the HTTP sink's fixture does not exercise its client")
	}
}

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
