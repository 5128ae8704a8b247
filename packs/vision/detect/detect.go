// Package detect is the model adapter contract of the vision pack: how a
// detector node hands a frame to an out-of-process model (a Python YOLO
// script, an ONNX server, anything that speaks the protocol) and reads its
// detections back, without cgo and without model weights in this binary.
//
// Two transports share one request header and one response object
// (docs/detector-adapter.md is the protocol reference):
//
//   - Process: a long-running child process. Per frame the node writes one
//     JSON header line (terminated by '\n') whose "bytes" field is the length
//     of the image that follows immediately as raw bytes; the child answers
//     with one JSON line on stdout. Responses carry the request id, so a late
//     answer to a timed-out request is recognised and skipped, and the line
//     stream resynchronises by itself.
//   - HTTP: one POST per frame, the image as the body, the same header JSON
//     in the X-Schnitzel-Request header, the same response object as the body.
//
// Failures are typed (*Error with a Kind) so the node can count them apart
// and drop only the packet concerned; ErrGaveUp means the restart budget of
// a crashing child is spent and the run should end.
package detect

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"

	"github.com/schnitzel-stream/schnitzel/redact"
)

// Image formats a request may carry.
const (
	FormatJPEG  = "jpeg"  // baseline JPEG of the frame
	FormatBGR24 = "bgr24" // width*height*3 bytes, rows top to bottom, blue green red
)

// Request is the header of one frame sent to an adapter. The Process
// transport fills ID; the image bytes follow the header line.
type Request struct {
	ID       int64           `json:"id"`
	Width    int             `json:"width"`
	Height   int             `json:"height"`
	Format   string          `json:"format"`
	Bytes    int             `json:"bytes"`
	FrameIdx int64           `json:"frame_idx"`
	SourceID string          `json:"source_id,omitempty"`
	TS       string          `json:"ts,omitempty"`
	Params   json.RawMessage `json:"params,omitempty"` // node-specific options (YOLO: model_path, conf, ...)
}

// BBox is a box in pixels of the frame; adapters may send fractional values.
type BBox struct {
	X1, Y1, X2, Y2 float64
}

// Detection is one object the adapter found. Only BBox and Confidence are
// required; the rest says what it is (class id and/or name, or the protocol
// fields directly) and may be absent.
type Detection struct {
	BBox       BBox
	Confidence float64
	ClassID    *int64
	ClassName  string // "class_name" or "class"
	ObjectType string
	EventType  string
	Severity   string
	TrackID    *int64
}

// Kind classifies an adapter failure.
type Kind string

// Failure kinds; each is counted by the detector nodes under its own metric.
const (
	KindTimeout   Kind = "timeout"   // no answer within timeout_sec (or a write that blocked as long)
	KindCrashed   Kind = "crashed"   // the child exited or could not be started
	KindGarbage   Kind = "garbage"   // the answer broke the protocol (not JSON, wrong shape, wrong id)
	KindAdapter   Kind = "adapter"   // the adapter reported an error for this frame ({"error": ...} or HTTP status)
	KindTransport Kind = "transport" // HTTP connection failure
)

// Error is a failed request. Adapter names the adapter (its command line or
// URL) so that messages say which one misbehaved.
type Error struct {
	Kind    Kind
	Adapter string
	Err     error
}

// Error is masked (redact.Text): an HTTP adapter's URL and transport
// errors may carry credentials, and the message travels into logs, nacks
// and dead letters.
func (e *Error) Error() string {
	return redact.Text(fmt.Sprintf("adapter %s: %s: %v", e.Adapter, e.Kind, e.Err))
}

func (e *Error) Unwrap() error { return e.Err }

// KindOf returns the Kind of err, or "" when err is not an *Error.
func KindOf(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return ""
}

// ErrGaveUp wraps the final crash once a child process has been restarted
// max_restarts times in a row without a single good answer in between.
var ErrGaveUp = errors.New("adapter restart budget spent")

// maxResponse bounds one response line or HTTP body; a model answering
// with more than 16 MiB of JSON for a frame is broken.
const maxResponse = 16 << 20

// Response is a parsed answer.
type Response struct {
	ID         int64
	HasID      bool
	Detections []Detection
	Err        string // the adapter's own error message for this frame
}

// ParseResponse checks one answer strictly: a JSON object with an integer
// "id" (required when needID), and either "error" (a non-empty string) or
// "detections" (a list, possibly empty) of objects with a numeric
// "confidence" and a "bbox" {x1,y1,x2,y2} of numbers. Anything else is an
// error saying what was wrong where.
func ParseResponse(line []byte, needID bool) (*Response, error) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(line, &raw); err != nil {
		return nil, fmt.Errorf("not a JSON object: %v", err)
	}
	r := &Response{}
	if v, ok := raw["id"]; ok && !isNull(v) {
		id, err := intField(v)
		if err != nil {
			return nil, fmt.Errorf("id: %v", err)
		}
		r.ID, r.HasID = id, true
	} else if needID {
		return nil, errors.New(`missing "id"`)
	}
	if v, ok := raw["error"]; ok && !isNull(v) {
		var s string
		if err := json.Unmarshal(v, &s); err != nil || s == "" {
			return nil, fmt.Errorf(`"error" must be a non-empty string, got %s`, excerpt(v))
		}
		r.Err = s
		return r, nil
	}
	v, ok := raw["detections"]
	if !ok {
		return nil, errors.New(`missing "detections" (a list) or "error"`)
	}
	var list []map[string]json.RawMessage
	if isNull(v) {
		return r, nil
	}
	if err := json.Unmarshal(v, &list); err != nil {
		return nil, fmt.Errorf(`"detections" must be a list of objects: %v`, err)
	}
	r.Detections = make([]Detection, 0, len(list))
	for i, m := range list {
		d, err := parseDetection(m)
		if err != nil {
			return nil, fmt.Errorf("detections[%d].%v", i, err)
		}
		r.Detections = append(r.Detections, d)
	}
	return r, nil
}

func parseDetection(m map[string]json.RawMessage) (Detection, error) {
	var d Detection
	conf, err := numField(m["confidence"])
	if err != nil {
		return d, fmt.Errorf("confidence: %v", err)
	}
	d.Confidence = conf
	var box map[string]json.RawMessage
	if err := json.Unmarshal(m["bbox"], &box); err != nil || box == nil {
		return d, fmt.Errorf("bbox: must be an object {x1, y1, x2, y2}, got %s", excerpt(m["bbox"]))
	}
	for _, c := range []struct {
		k string
		p *float64
	}{{"x1", &d.BBox.X1}, {"y1", &d.BBox.Y1}, {"x2", &d.BBox.X2}, {"y2", &d.BBox.Y2}} {
		v, err := numField(box[c.k])
		if err != nil {
			return d, fmt.Errorf("bbox.%s: %v", c.k, err)
		}
		*c.p = v
	}
	if v, ok := m["class_id"]; ok && !isNull(v) {
		id, err := intField(v)
		if err != nil {
			return d, fmt.Errorf("class_id: %v", err)
		}
		d.ClassID = &id
	}
	if v, ok := m["track_id"]; ok && !isNull(v) {
		id, err := intField(v)
		if err != nil {
			return d, fmt.Errorf("track_id: %v", err)
		}
		d.TrackID = &id
	}
	for _, c := range []struct {
		k string
		p *string
	}{{"class", &d.ClassName}, {"class_name", &d.ClassName}, {"object_type", &d.ObjectType},
		{"event_type", &d.EventType}, {"severity", &d.Severity}} {
		v, ok := m[c.k]
		if !ok || isNull(v) {
			continue
		}
		if err := json.Unmarshal(v, c.p); err != nil {
			return d, fmt.Errorf("%s: must be a string, got %s", c.k, excerpt(v))
		}
	}
	return d, nil
}

func isNull(v json.RawMessage) bool { return len(v) == 0 || string(v) == "null" }

func numField(v json.RawMessage) (float64, error) {
	if isNull(v) {
		return 0, errors.New("missing (want a number)")
	}
	f, err := strconv.ParseFloat(string(v), 64)
	if err != nil || v[0] == '"' || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, fmt.Errorf("must be a finite number, got %s", excerpt(v))
	}
	return f, nil
}

func intField(v json.RawMessage) (int64, error) {
	f, err := numField(v)
	if err != nil {
		return 0, err
	}
	if f != math.Trunc(f) || math.Abs(f) > 1<<53 {
		return 0, fmt.Errorf("must be an integer, got %s", excerpt(v))
	}
	return int64(f), nil
}

// excerpt shows at most 120 bytes of bad output in an error message.
func excerpt(b []byte) string {
	b = bytes.TrimSpace(b)
	if len(b) > 120 {
		return strconv.Quote(string(b[:120])) + "..."
	}
	return strconv.Quote(string(b))
}
