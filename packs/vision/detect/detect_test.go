package detect_test

import (
	"bytes"
	"context"
	"errors"
	"image/jpeg"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/schnitzel-stream/schnitzel/packs/vision/detect"
	"github.com/schnitzel-stream/schnitzel/packs/vision/detect/adaptertest"
	"github.com/schnitzel-stream/schnitzel/packs/vision/frame"
)

func TestMain(m *testing.M) {
	adaptertest.Main()
	os.Exit(m.Run())
}

func TestParseResponse(t *testing.T) {
	cases := []struct {
		name, in string
		needID   bool
		wantErr  string
		wantN    int
	}{
		{"ok", `{"id": 3, "detections": [{"bbox": {"x1": 1, "y1": 2, "x2": 3.5, "y2": 4}, "confidence": 0.5, "class_id": 2, "class": "car", "track_id": 7}]}`, true, "", 1},
		{"empty", `{"id": 3, "detections": []}`, true, "", 0},
		{"null detections", `{"id": 3, "detections": null}`, true, "", 0},
		{"adapter error", `{"id": 3, "error": "no model"}`, true, "", 0},
		{"not json", `hello`, true, "not a JSON object", 0},
		{"array", `[1]`, true, "not a JSON object", 0},
		{"no id", `{"detections": []}`, true, `missing "id"`, 0},
		{"no id ok for http", `{"detections": []}`, false, "", 0},
		{"fractional id", `{"id": 1.5, "detections": []}`, true, "id: must be an integer", 0},
		{"neither", `{"id": 1}`, true, `missing "detections"`, 0},
		{"detections not list", `{"id": 1, "detections": {}}`, true, "must be a list", 0},
		{"missing bbox", `{"id": 1, "detections": [{"confidence": 1}]}`, true, "detections[0].bbox", 0},
		{"missing x2", `{"id": 1, "detections": [{"confidence": 1, "bbox": {"x1": 1, "y1": 1, "y2": 2}}]}`, true, "detections[0].bbox.x2: missing", 0},
		{"string coordinate", `{"id": 1, "detections": [{"confidence": 1, "bbox": {"x1": "1", "y1": 1, "x2": 2, "y2": 2}}]}`, true, "bbox.x1: must be a finite number", 0},
		{"missing confidence", `{"id": 1, "detections": [{"bbox": {"x1": 1, "y1": 1, "x2": 2, "y2": 2}}]}`, true, "detections[0].confidence: missing", 0},
		{"bad class name", `{"id": 1, "detections": [{"confidence": 1, "class_name": 3, "bbox": {"x1": 1, "y1": 1, "x2": 2, "y2": 2}}]}`, true, "class_name: must be a string", 0},
		{"empty error", `{"id": 1, "error": ""}`, true, `"error" must be a non-empty string`, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r, err := detect.ParseResponse([]byte(c.in), c.needID)
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("err = %v, want %q", err, c.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(r.Detections) != c.wantN {
				t.Fatalf("%d detections, want %d", len(r.Detections), c.wantN)
			}
		})
	}
	r, _ := detect.ParseResponse([]byte(cases[0].in), true)
	d := r.Detections[0]
	if d.BBox != (detect.BBox{X1: 1, Y1: 2, X2: 3.5, Y2: 4}) || d.Confidence != 0.5 || *d.ClassID != 2 || d.ClassName != "car" || *d.TrackID != 7 {
		t.Fatalf("parsed %+v", d)
	}
}

func newProc(t *testing.T, mode string, edit func(*detect.ProcessConfig)) *detect.Process {
	t.Helper()
	cfg := detect.ProcessConfig{
		Command: []string{os.Args[0], "-test.run=^$"}, Env: []string{adaptertest.EnvMode + "=" + mode},
		Timeout: 5 * time.Second, MaxRestarts: 3, BackoffMin: time.Millisecond, BackoffMax: 4 * time.Millisecond, MaxTimeouts: 3,
	}
	if edit != nil {
		edit(&cfg)
	}
	p := detect.NewProcess(cfg)
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := p.Close(context.Background()); err != nil {
			t.Error(err)
		}
	})
	return p
}

func call(p interface {
	Detect(context.Context, *detect.Request, []byte) ([]detect.Detection, error)
}, idx int64) ([]detect.Detection, error) {
	req := &detect.Request{Width: 4, Height: 2, Format: detect.FormatBGR24, FrameIdx: idx}
	return p.Detect(context.Background(), req, make([]byte, 24))
}

func TestProcessAnswers(t *testing.T) {
	p := newProc(t, "fixed", nil)
	for i := range int64(3) {
		dets, err := call(p, i)
		if err != nil {
			t.Fatal(err)
		}
		if len(dets) != 1 || dets[0].BBox != (detect.BBox{X1: 10, Y1: 20, X2: 30, Y2: 40}) || dets[0].ClassName != "fixed" {
			t.Fatalf("frame %d: %+v", i, dets)
		}
	}
	if p.Restarts() != 0 {
		t.Fatalf("restarts %d", p.Restarts())
	}
}

func kindOf(t *testing.T, err error, want detect.Kind, contains string) {
	t.Helper()
	if k := detect.KindOf(err); k != want {
		t.Fatalf("kind %q (%v), want %q", k, err, want)
	}
	if !strings.Contains(err.Error(), contains) {
		t.Fatalf("error %q does not mention %q", err, contains)
	}
}

func TestProcessCrashRestarts(t *testing.T) {
	p := newProc(t, "fixed,crash-after=2", nil)
	for i := range int64(2) {
		if _, err := call(p, i); err != nil {
			t.Fatal(err)
		}
	}
	_, err := call(p, 2)
	kindOf(t, err, detect.KindCrashed, "boom (crash-after)")
	if !strings.Contains(err.Error(), "exit status 3") || !strings.Contains(err.Error(), "adapter ["+os.Args[0]) {
		t.Fatalf("crash error lacks exit status or adapter name: %v", err)
	}
	if _, err := call(p, 3); err != nil {
		t.Fatalf("after restart: %v", err)
	}
	if p.Restarts() != 1 {
		t.Fatalf("restarts %d, want 1", p.Restarts())
	}
}

func TestProcessGivesUp(t *testing.T) {
	p := newProc(t, "crash-after=0", func(c *detect.ProcessConfig) { c.MaxRestarts = 2 })
	for i := range int64(3) { // the first run and 2 restarts each crash
		_, err := call(p, i)
		kindOf(t, err, detect.KindCrashed, "boom")
		if errors.Is(err, detect.ErrGaveUp) {
			t.Fatalf("gave up too early at %d", i)
		}
	}
	_, err := call(p, 3)
	if !errors.Is(err, detect.ErrGaveUp) || !strings.Contains(err.Error(), "max_restarts 2") {
		t.Fatalf("err %v, want ErrGaveUp", err)
	}
	if p.Restarts() != 2 {
		t.Fatalf("restarts %d, want 2", p.Restarts())
	}
}

func TestProcessGarbage(t *testing.T) {
	p := newProc(t, "fixed,garbage-on=1", nil)
	if _, err := call(p, 0); err != nil {
		t.Fatal(err)
	}
	_, err := call(p, 1)
	kindOf(t, err, detect.KindGarbage, `"this is not json"`)
	if _, err := call(p, 2); err != nil {
		t.Fatalf("after garbage: %v", err)
	}
	if p.Restarts() != 0 {
		t.Fatal("garbage restarted the adapter")
	}
}

// A banner line before the first answer costs that frame only: the real
// answer that follows carries the old id and is skipped.
func TestProcessBannerResyncs(t *testing.T) {
	p := newProc(t, "fixed,banner", nil)
	_, err := call(p, 0)
	kindOf(t, err, detect.KindGarbage, "loading model")
	for i := int64(1); i < 3; i++ {
		if dets, err := call(p, i); err != nil || len(dets) != 1 {
			t.Fatalf("frame %d: %v %v", i, dets, err)
		}
	}
}

func TestProcessTimeoutThenLateAnswerSkipped(t *testing.T) {
	p := newProc(t, "fixed,slow-on=1", func(c *detect.ProcessConfig) { c.Timeout = 300 * time.Millisecond; c.MaxTimeouts = 100 })
	if _, err := call(p, 0); err != nil {
		t.Fatal(err)
	}
	_, err := call(p, 1)
	kindOf(t, err, detect.KindTimeout, "no answer within 300ms")
	// The adapter is still busy with frame 1; frame 2 waits behind it, so
	// give it room, then check the answer is frame 2's (id in sync).
	p2 := func() error {
		req := &detect.Request{Width: 4, Height: 2, Format: detect.FormatBGR24, FrameIdx: 2}
		ctx := context.Background()
		deadline := time.Now().Add(10 * time.Second)
		for {
			_, err := p.Detect(ctx, req, make([]byte, 24))
			if err == nil || detect.KindOf(err) != detect.KindTimeout || time.Now().After(deadline) {
				return err
			}
		}
	}
	if err := p2(); err != nil {
		t.Fatal(err)
	}
	if p.Restarts() != 0 {
		t.Fatal("a single timeout restarted the adapter")
	}
}

func TestProcessHangRestarts(t *testing.T) {
	p := newProc(t, "hang", func(c *detect.ProcessConfig) { c.Timeout = 100 * time.Millisecond; c.MaxTimeouts = 2 })
	_, err := call(p, 0)
	kindOf(t, err, detect.KindTimeout, "no answer within")
	_, err = call(p, 1)
	kindOf(t, err, detect.KindTimeout, "considered hung")
	_, err = call(p, 2)
	kindOf(t, err, detect.KindTimeout, "no answer within")
	if p.Restarts() != 1 {
		t.Fatalf("restarts %d, want 1", p.Restarts())
	}
}

func TestProcessStartErrors(t *testing.T) {
	p := detect.NewProcess(detect.ProcessConfig{Command: []string{"/nonexistent/adapter", "x"}, Timeout: time.Second})
	err := p.Start()
	if err == nil || !strings.Contains(err.Error(), "/nonexistent/adapter") {
		t.Fatalf("err %v", err)
	}
	if err := detect.NewProcess(detect.ProcessConfig{}).Start(); err == nil {
		t.Fatal("empty command started")
	}
}

func TestProcessCloseIdempotent(t *testing.T) {
	p := newProc(t, "fixed", nil)
	if _, err := call(p, 0); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := p.Close(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := call(p, 1); err == nil {
		t.Fatal("Detect after Close succeeded")
	}
}

func TestHTTP(t *testing.T) {
	srv := httptest.NewServer(adaptertest.Handler("fixed,garbage-on=1,error-on=2,slow-on=3"))
	defer srv.Close()
	h := &detect.HTTP{URL: srv.URL, Timeout: 300 * time.Millisecond}
	defer h.Close(context.Background())
	dets, err := call(h, 0)
	if err != nil || len(dets) != 1 || dets[0].BBox.X2 != 30 {
		t.Fatalf("%v %v", dets, err)
	}
	_, err = call(h, 1)
	kindOf(t, err, detect.KindGarbage, "<html>")
	_, err = call(h, 2)
	kindOf(t, err, detect.KindAdapter, "model exploded")
	_, err = call(h, 3)
	kindOf(t, err, detect.KindTimeout, "no answer within")
	if _, err := call(h, 4); err != nil {
		t.Fatal(err)
	}
	srv.Close()
	_, err = call(h, 5)
	kindOf(t, err, detect.KindTransport, srv.URL)
}

func TestEncoder(t *testing.T) {
	f := frame.New(8, 4)
	for i := 0; i < len(f.BGR()); i += 3 {
		f.BGR()[i+2] = 255 // red
	}
	raw := detect.Encoder{Format: detect.FormatBGR24}
	b, err := raw.Encode(f)
	if err != nil || &b[0] != &f.BGR()[0] || len(b) != 96 {
		t.Fatalf("bgr24 should pass the packed pixels through: %d %v", len(b), err)
	}
	enc := detect.Encoder{Format: detect.FormatJPEG, Quality: 90}
	b, err = enc.Encode(f)
	if err != nil {
		t.Fatal(err)
	}
	img, err := jpeg.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	if img.Bounds().Dx() != 8 || img.Bounds().Dy() != 4 {
		t.Fatalf("size %v", img.Bounds())
	}
	if r, g, _, _ := img.At(4, 2).RGBA(); r>>8 < 200 || g>>8 > 60 {
		t.Fatalf("pixel not red: %d %d", r>>8, g>>8)
	}
	if _, err := (&detect.Encoder{Format: "png"}).Encode(f); err == nil {
		t.Fatal("unknown format encoded")
	}
	if _, err := enc.Encode(&frame.Frame{}); err == nil {
		t.Fatal("empty frame encoded")
	}
}

// cancelSoon cancels the returned ctx once the call under test is under
// way; the Timeout of an hour means only the cancellation can end it.
func cancelSoon(t *testing.T) context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	tm := time.AfterFunc(50*time.Millisecond, cancel)
	t.Cleanup(func() { tm.Stop(); cancel() })
	return ctx
}

// A run's stop cancels the ctx: Detect returns then, whether the adapter
// is thinking (no answer) or not reading its input at all, so a stop is
// bounded by --stop-timeout rather than by the adapter.
func TestProcessDetectReturnsOnCancel(t *testing.T) {
	for _, tc := range []struct {
		mode string
		img  int
	}{
		{"hang", 24},
		{"noread", 4 << 20}, // larger than any pipe buffer: the write blocks
	} {
		t.Run(tc.mode, func(t *testing.T) {
			p := newProc(t, tc.mode, func(c *detect.ProcessConfig) { c.Timeout = time.Hour; c.MaxRestarts = -1 })
			req := &detect.Request{Width: 4, Height: 2, Format: detect.FormatBGR24}
			_, err := p.Detect(cancelSoon(t), req, make([]byte, tc.img))
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("err %v, want context.Canceled", err)
			}
		})
	}
}

// A cancelled Detect leaves the adapter usable: the late answer is skipped
// by id, or a child killed mid-write is restarted.
func TestProcessUsableAfterCancel(t *testing.T) {
	p := newProc(t, "fixed,delay-ms=300", func(c *detect.ProcessConfig) { c.Timeout = time.Hour })
	req := &detect.Request{Width: 4, Height: 2, Format: detect.FormatBGR24}
	if _, err := p.Detect(cancelSoon(t), req, make([]byte, 24)); !errors.Is(err, context.Canceled) {
		t.Fatalf("err %v", err)
	}
	dets, err := call(p, 1)
	if err != nil || len(dets) != 1 {
		t.Fatalf("after cancel: %v %v", dets, err)
	}
}

func TestHTTPDetectReturnsOnCancel(t *testing.T) {
	srv := httptest.NewServer(adaptertest.Handler("hang"))
	defer srv.Close()
	h := &detect.HTTP{URL: srv.URL, Timeout: time.Hour}
	req := &detect.Request{Width: 4, Height: 2, Format: detect.FormatBGR24}
	_, err := h.Detect(cancelSoon(t), req, make([]byte, 24))
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err %v, want context.Canceled", err)
	}
}
