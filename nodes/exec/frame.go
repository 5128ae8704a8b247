package execnodes

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strconv"

	"github.com/schnitzel-stream/schnitzel/packet"
)

// ProtocolVersion is the protocol this package speaks (docs/plugin-protocol.md).
const ProtocolVersion = 1

// DefaultMaxFrameBytes bounds one frame (one line) in either direction.
const DefaultMaxFrameBytes = 8 << 20

// frame is one decoded line from the child.
type frame struct {
	Type  string
	ID    int64
	HasID bool
	M     *packet.Map
}

// errFrameTooBig marks a line over the limit: the framing is lost.
var errFrameTooBig = errors.New("frame too big")

// readFrames splits r into lines of at most max bytes and decodes each as
// a frame, until EOF. A line that is not a JSON object with a string
// "type" is reported and reading goes on (the caller decides); a line over
// max ends reading, after which r is drained so the child never blocks on
// a full pipe. Closing quit ends it (the child is being killed).
func readFrames(r io.Reader, max int, out chan<- frameItem, quit <-chan struct{}) {
	defer close(out)
	send := func(it frameItem) bool {
		select {
		case out <- it:
			return true
		case <-quit: // we stopped listening: drain so the child never blocks
			_, _ = io.Copy(io.Discard, r)
			return false
		}
	}
	br := bufio.NewReaderSize(r, 64<<10)
	var buf []byte
	for {
		chunk, err := br.ReadSlice('\n')
		if len(buf)+len(chunk) > max+1 { // +1: the newline is not part of the frame
			if send(frameItem{err: fmt.Errorf("%w: a line longer than %d bytes (max_frame_bytes)", errFrameTooBig, max)}) {
				_, _ = io.Copy(io.Discard, br)
			}
			return
		}
		switch {
		case errors.Is(err, bufio.ErrBufferFull):
			buf = append(buf, chunk...)
			continue
		case err != nil && len(buf)+len(chunk) == 0:
			return // EOF (or a read error: the child is gone either way)
		}
		line := chunk
		if len(buf) > 0 {
			buf = append(buf, chunk...)
			line = buf
		}
		if n := len(line); n > 0 && line[n-1] == '\n' {
			line = line[:n-1]
		}
		if n := len(line); n > 0 && line[n-1] == '\r' {
			line = line[:n-1]
		}
		if len(line) > 0 {
			f, ferr := parseFrame(line)
			if !send(frameItem{f: f, err: ferr, size: len(line)}) {
				return
			}
		}
		buf = buf[:0]
		if err != nil {
			return
		}
	}
}

type frameItem struct {
	f    frame
	err  error // garbage or an oversized line
	size int
}

func parseFrame(line []byte) (frame, error) {
	v, err := packet.DecodeJSON(line)
	if err != nil {
		return frame{}, fmt.Errorf("not a JSON frame (%v): %s", err, excerpt(line))
	}
	m, ok := v.(*packet.Map)
	if !ok {
		return frame{}, fmt.Errorf("a frame must be a JSON object: %s", excerpt(line))
	}
	t, ok := m.GetString("type")
	if !ok {
		return frame{}, fmt.Errorf(`a frame needs a string "type": %s`, excerpt(line))
	}
	f := frame{Type: t, M: m}
	if raw, has := m.Get("id"); has {
		id, ok := raw.(int64)
		if !ok {
			return frame{}, fmt.Errorf(`frame %q: "id" must be an integer: %s`, t, excerpt(line))
		}
		f.ID, f.HasID = id, true
	}
	return f, nil
}

// excerpt shows the start of a bad line in an error.
func excerpt(b []byte) string {
	if len(b) > 120 {
		return strconv.Quote(string(b[:120])) + "..."
	}
	return strconv.Quote(string(b))
}

// encoder writes our frames. Packets go through the repo's one JSON codec
// (packet.JSONEncoder, strict: a frame or bytes value is refused with its
// path), compact, UTF-8.
type encoder struct {
	pk packet.JSONEncoder
	v  packet.JSONEncoder
}

func newEncoder() *encoder {
	return &encoder{
		pk: packet.NewJSONEncoder(packet.JSONOptions{Style: packet.Compact, Strict: true, Path: "packet"}),
		v:  packet.NewJSONEncoder(packet.JSONOptions{Style: packet.Compact, Strict: true, Path: "config"}),
	}
}

// packetFrame appends {"type":"packet","id":N,"packet":{...}} and a newline.
func (e *encoder) packetFrame(b []byte, id int64, p *packet.Packet) ([]byte, error) {
	b = append(b, `{"type":"packet","id":`...)
	b = strconv.AppendInt(b, id, 10)
	b = append(b, `,"packet":`...)
	out, err := e.pk.AppendPacket(b, p)
	if err != nil {
		return b, fmt.Errorf("%w (frames and bytes cross the plugin protocol by reference only: write them to a blob first, see docs/plugin-protocol.md)", err)
	}
	return append(out, "}\n"...), nil
}

// configFrame appends {"type":"config","config":{...},"node_id":...}.
func (e *encoder) configFrame(b []byte, cfg *packet.Map, nodeID string) ([]byte, error) {
	if cfg == nil {
		cfg = packet.NewMap(0)
	}
	b = append(b, `{"type":"config","config":`...)
	out, err := e.v.Append(b, cfg)
	if err != nil {
		return b, err
	}
	out = append(out, `,"node_id":`...)
	out = packet.AppendStringUTF8(out, nodeID)
	return append(out, "}\n"...), nil
}

// toPacket builds a packet from a frame's packet object. Fields the plugin
// left out come from base (the input packet: a plugin may answer just
// {"payload": ...}), or for a source are fresh: a new id, now, kind raw,
// source_id the node id. Ack and Nack travel with base.
func toPacket(v any, base *packet.Packet, nodeID, where string) (*packet.Packet, error) {
	m, ok := v.(*packet.Map)
	if !ok {
		return nil, fmt.Errorf("%s: a packet must be a JSON object", where)
	}
	var p *packet.Packet
	if base != nil {
		p = base.Copy()
	} else {
		p = &packet.Packet{Kind: "raw", SourceID: nodeID}
	}
	str := func(key string, dst *string) error {
		raw, has := m.Get(key)
		if !has || raw == nil {
			return nil
		}
		s, ok := raw.(string)
		if !ok {
			return fmt.Errorf("%s.%s must be a string", where, key)
		}
		*dst = s
		return nil
	}
	for _, f := range []struct {
		k string
		d *string
	}{{"packet_id", &p.ID}, {"ts", &p.TS}, {"kind", &p.Kind}, {"source_id", &p.SourceID}} {
		if err := str(f.k, f.d); err != nil {
			return nil, err
		}
	}
	if p.ID == "" {
		p.ID = packet.NewID()
	}
	if p.TS == "" {
		p.TS = packet.Now()
	}
	if raw, has := m.Get("payload"); has {
		p.Payload = raw
	} else if base == nil {
		p.Payload = nil
	}
	if raw, has := m.Get("meta"); has {
		switch x := raw.(type) {
		case nil:
			p.Meta = nil
		case *packet.Map:
			p.Meta = x
		default:
			return nil, fmt.Errorf("%s.meta must be an object", where)
		}
	}
	return p, nil
}
