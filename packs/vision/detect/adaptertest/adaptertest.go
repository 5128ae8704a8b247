// Package adaptertest is a model adapter for tests, in Go so that tests
// need no Python: a test binary re-executes itself as the adapter (the
// helper-process pattern). In the test package:
//
//	func TestMain(m *testing.M) { adaptertest.Main(); os.Exit(m.Run()) }
//
// and give the node command [os.Args[0]] with env {SCHNITZEL_TEST_ADAPTER: mode}.
//
// Modes (comma separated, combinable): red (box around the red pixels,
// class 0 "red"; nothing when none), fixed (box 10,20,30,40 class 0),
// crash-after=N (exit 3 on the request after N answers), garbage-on=I
// (a non-JSON line for frame_idx I), error-on=I ({"error"} for frame_idx I),
// slow-on=I (answer frame_idx I after 2 s), hang (never answer),
// banner (print a non-JSON line before the first answer), delay-ms=N
// (answer every frame after N ms), noread (never read stdin).
package adaptertest

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"image"
	"image/jpeg"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"
)

// EnvMode is the environment variable that turns a test binary into the adapter.
const EnvMode = "SCHNITZEL_TEST_ADAPTER"

// Main runs the adapter and exits when EnvMode is set; otherwise it returns.
func Main() {
	mode := os.Getenv(EnvMode)
	if mode == "" {
		return
	}
	if err := Serve(os.Stdin, os.Stdout, mode); err != nil {
		fmt.Fprintln(os.Stderr, "adaptertest:", err)
		os.Exit(2)
	}
	os.Exit(0)
}

type header struct {
	ID       int64  `json:"id"`
	Width    int    `json:"width"`
	Height   int    `json:"height"`
	Format   string `json:"format"`
	Bytes    int    `json:"bytes"`
	FrameIdx int64  `json:"frame_idx"`
}

type options struct {
	red, fixed, hang, banner   bool
	noread                     bool
	delay                      time.Duration
	crashAfter                 int
	garbageOn, errorOn, slowOn int64
}

func parse(mode string) options {
	o := options{crashAfter: -1, garbageOn: -1, errorOn: -1, slowOn: -1}
	for _, part := range strings.Split(mode, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(part), "=")
		n, _ := strconv.ParseInt(v, 10, 64)
		switch k {
		case "red":
			o.red = true
		case "fixed":
			o.fixed = true
		case "hang":
			o.hang = true
		case "banner":
			o.banner = true
		case "noread":
			o.noread = true
		case "delay-ms":
			o.delay = time.Duration(n) * time.Millisecond
		case "crash-after":
			o.crashAfter = int(n)
		case "garbage-on":
			o.garbageOn = n
		case "error-on":
			o.errorOn = n
		case "slow-on":
			o.slowOn = n
		}
	}
	return o
}

// Serve speaks the process protocol on r/w until r ends.
func Serve(r io.Reader, w io.Writer, mode string) error {
	o := parse(mode)
	if o.noread {
		select {} // a child that stopped reading its input
	}
	in := bufio.NewReader(r)
	out := bufio.NewWriter(w)
	answered := 0
	for {
		line, err := in.ReadBytes('\n')
		if err == io.EOF && len(line) == 0 {
			return nil
		}
		if err != nil {
			return err
		}
		var h header
		if err := json.Unmarshal(line, &h); err != nil {
			return fmt.Errorf("bad header %q: %v", line, err)
		}
		img := make([]byte, h.Bytes)
		if _, err := io.ReadFull(in, img); err != nil {
			return fmt.Errorf("short image: %v", err)
		}
		if o.crashAfter >= 0 && answered >= o.crashAfter {
			fmt.Fprintln(os.Stderr, "adaptertest: boom (crash-after)")
			os.Exit(3)
		}
		if o.hang {
			continue
		}
		if o.banner && answered == 0 {
			fmt.Fprintln(out, "loading model... done")
		}
		if h.FrameIdx == o.slowOn {
			time.Sleep(2 * time.Second)
		}
		time.Sleep(o.delay)
		switch {
		case h.FrameIdx == o.garbageOn:
			fmt.Fprintln(out, "this is not json")
		default:
			b, err := answer(o, &h, img)
			if err != nil {
				return err
			}
			out.Write(b)
			out.WriteByte('\n')
		}
		if err := out.Flush(); err != nil {
			return err
		}
		answered++
	}
}

func answer(o options, h *header, img []byte) ([]byte, error) {
	if h.FrameIdx == o.errorOn {
		return json.Marshal(map[string]any{"id": h.ID, "error": "model exploded"})
	}
	dets := []map[string]any{}
	switch {
	case o.fixed:
		dets = append(dets, det(10, 20, 30, 40, "fixed"))
	case o.red:
		x1, y1, x2, y2, ok, err := redBox(h, img)
		if err != nil {
			return json.Marshal(map[string]any{"id": h.ID, "error": err.Error()})
		}
		if ok {
			dets = append(dets, det(x1, y1, x2, y2, "red"))
		}
	}
	return json.Marshal(map[string]any{"id": h.ID, "detections": dets})
}

func det(x1, y1, x2, y2 int, name string) map[string]any {
	return map[string]any{"class_id": 0, "class_name": name, "confidence": 0.9,
		"bbox": map[string]any{"x1": x1, "y1": y1, "x2": x2, "y2": y2}}
}

// redBox finds the bounding box of clearly red pixels; x2/y2 are exclusive.
func redBox(h *header, data []byte) (x1, y1, x2, y2 int, ok bool, err error) {
	at := func(x, y int) (r, g, b uint8) {
		i := 3 * (y*h.Width + x)
		return data[i+2], data[i+1], data[i]
	}
	if h.Format == "jpeg" {
		img, err := jpeg.Decode(bytes.NewReader(data))
		if err != nil {
			return 0, 0, 0, 0, false, err
		}
		at = func(x, y int) (r, g, b uint8) {
			rr, gg, bb, _ := img.At(x, y).RGBA()
			return uint8(rr >> 8), uint8(gg >> 8), uint8(bb >> 8)
		}
		if img.Bounds() != image.Rect(0, 0, h.Width, h.Height) {
			return 0, 0, 0, 0, false, fmt.Errorf("jpeg is %v, header says %dx%d", img.Bounds(), h.Width, h.Height)
		}
	} else if len(data) != 3*h.Width*h.Height {
		return 0, 0, 0, 0, false, fmt.Errorf("bgr24: %d bytes for %dx%d", len(data), h.Width, h.Height)
	}
	x1, y1 = h.Width, h.Height
	for y := 0; y < h.Height; y++ {
		for x := 0; x < h.Width; x++ {
			if r, g, b := at(x, y); r > 150 && g < 100 && b < 100 {
				x1, y1, x2, y2 = min(x1, x), min(y1, y), max(x2, x+1), max(y2, y+1)
				ok = true
			}
		}
	}
	return x1, y1, x2, y2, ok, nil
}

// Handler serves the HTTP transport with the same modes (crash-after and
// hang do not apply; slow-on sleeps, garbage-on answers non-JSON).
func Handler(mode string) http.Handler {
	o := parse(mode)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var h header
		if err := json.Unmarshal([]byte(r.Header.Get("X-Schnitzel-Request")), &h); err != nil {
			http.Error(w, "bad X-Schnitzel-Request: "+err.Error(), http.StatusBadRequest)
			return
		}
		img, err := io.ReadAll(r.Body)
		if err != nil || len(img) != h.Bytes {
			http.Error(w, "short body", http.StatusBadRequest)
			return
		}
		if o.hang {
			<-r.Context().Done()
			return
		}
		if h.FrameIdx == o.slowOn {
			select {
			case <-time.After(2 * time.Second):
			case <-r.Context().Done():
				return
			}
		}
		if h.FrameIdx == o.garbageOn {
			io.WriteString(w, "<html>oops</html>")
			return
		}
		b, err := answer(o, &h, img)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write(b)
	})
}
