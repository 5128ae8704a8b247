// Package lines holds the line-oriented connectors: StdinSource (lines or
// NDJSON on the process's stdin, ending at EOF), StdoutSink (one compact
// JSON line per packet on stdout) and FileTailSource (follows files like
// `tail -F`, across rename and copytruncate rotation, with its offsets in a
// durable state file so that a restart neither repeats nor skips lines).
//
// A line becomes a payload by `format`: lines gives {"line": "<text>"},
// ndjson the JSON value the line holds, auto the JSON value for a line that
// starts with { or [ and {"line": ...} for any other. Lines end at \n; a
// \r before it is dropped. A line longer than max_line_bytes is never held
// whole: it is dropped or truncated (on_long_line), and counted.
package lines

import (
	"bufio"
	"bytes"
	"errors"
	"io"

	"github.com/schnitzel-stream/schnitzel/packet"
	"github.com/schnitzel-stream/schnitzel/plugin"
)

const mod = "schnitzel_stream.nodes.lines:"

// Formats and bad/long line policies.
const (
	formatLines  = "lines"
	formatNDJSON = "ndjson"
	formatAuto   = "auto"

	badDrop   = "drop"
	badString = "string"
	badError  = "error"

	longDrop     = "drop"
	longTruncate = "truncate"
)

// DefaultMaxLineBytes bounds one line: 1 MiB.
const DefaultMaxLineBytes = 1 << 20

// readBuf is the bufio buffer of a line reader: a line longer than this is
// read in pieces, never more than max_line_bytes of it kept.
const readBuf = 64 << 10

// LineConfig is the config both line sources share (inlined in theirs).
type LineConfig struct {
	Format       string `yaml:"format" enum:"lines,ndjson,auto" doc:"How a line becomes a payload: lines ({\"line\": text}), ndjson (the JSON value on the line; blank lines skipped), auto (JSON for a line starting with { or [, else as lines)."`
	OnBadLine    string `yaml:"on_bad_line" enum:"drop,string,error" doc:"A line that is not valid JSON (ndjson, or auto for a line starting with { or [): drop it (counted), pass it on as {\"line\": text}, or end the run with an error naming the line."`
	Kind         string `yaml:"kind" doc:"Packet kind of the emitted packets."`
	SourceID     string `yaml:"source_id" doc:"source_id of the emitted packets (FileTailSource: empty means the file's path)."`
	MaxLineBytes int    `yaml:"max_line_bytes" advanced:"true" doc:"Longest line kept, in bytes without its newline; a longer one is handled by on_long_line and counted in long_lines_total."`
	OnLongLine   string `yaml:"on_long_line" enum:"drop,truncate" advanced:"true" doc:"A line longer than max_line_bytes: drop it (counted in dropped_total) or keep its first max_line_bytes bytes."`
}

func lineDefaults(sourceID string) LineConfig {
	return LineConfig{Format: formatLines, OnBadLine: badDrop, Kind: "event", SourceID: sourceID,
		MaxLineBytes: DefaultMaxLineBytes, OnLongLine: longDrop}
}

func (c *LineConfig) validate() error {
	var errs []error
	if c.MaxLineBytes <= 0 {
		errs = append(errs, plugin.Errorf("max_line_bytes", "max_line_bytes must be > 0 (got %d)", c.MaxLineBytes))
	}
	if c.Kind == "" {
		errs = append(errs, plugin.Errorf("kind", "kind must not be empty"))
	}
	return errors.Join(errs...)
}

// Register adds the line connectors to r.
func Register(r *plugin.Registry) {
	registerStdin(r)
	registerStdout(r)
	registerTail(r)
}

// lineMetrics are the counters both sources keep (lineMetricSpecs).
type lineMetrics struct {
	lines, bad, long, dropped *plugin.Counter
}

func newLineMetrics(cs *plugin.Counters) lineMetrics {
	return lineMetrics{lines: cs.Get("lines_total"), bad: cs.Get("bad_lines_total"),
		long: cs.Get("long_lines_total"), dropped: cs.Get("dropped_total")}
}

var lineMetricSpecs = []plugin.MetricSpec{
	{Name: "lines_total", Help: "Complete lines read (blank NDJSON lines included)."},
	{Name: "bad_lines_total", Help: "Lines that were not valid JSON where JSON was expected (on_bad_line decides what happened to them)."},
	{Name: "long_lines_total", Help: "Lines longer than max_line_bytes (dropped or truncated, by on_long_line)."},
	{Name: "dropped_total", Help: "Lines not emitted: bad lines under on_bad_line drop, long lines under on_long_line drop.", Loss: true},
}

// errBadLine is what on_bad_line error ends the run with (wrapped with
// where the line was).
var errBadLine = errors.New("line is not valid JSON")

// decode turns one line (without its newline) into a payload, counting
// it. ok false: the line is dropped (counted). err: on_bad_line error.
func (c *LineConfig) decode(m *lineMetrics, line []byte, long bool) (payload any, ok bool, err error) {
	m.lines.Add(1)
	if long {
		m.long.Add(1)
		if c.OnLongLine == longDrop {
			m.dropped.Add(1)
			return nil, false, nil
		}
	}
	asJSON := false
	switch c.Format {
	case formatNDJSON:
		if len(bytes.TrimSpace(line)) == 0 {
			return nil, false, nil // a blank line between records is no record
		}
		asJSON = true
	case formatAuto:
		t := bytes.TrimLeft(line, " \t")
		asJSON = len(t) > 0 && (t[0] == '{' || t[0] == '[')
	}
	if !asJSON {
		return packet.MapOf("line", string(line)), true, nil
	}
	v, jerr := packet.DecodeJSON(line)
	if jerr == nil {
		return v, true, nil
	}
	m.bad.Add(1)
	switch c.OnBadLine {
	case badString:
		return packet.MapOf("line", string(line)), true, nil
	case badError:
		return nil, false, errors.Join(errBadLine, jerr)
	}
	m.dropped.Add(1)
	return nil, false, nil
}

// lineReader reads lines of at most max bytes from a bufio.Reader: a
// longer line is read through, only its first max bytes kept.
type lineReader struct {
	br  *bufio.Reader
	max int
	buf []byte
}

func newLineReader(r io.Reader, max int) *lineReader {
	return &lineReader{br: bufio.NewReaderSize(r, readBuf), max: max}
}

// next returns the next line without \n or \r\n (valid until the next
// call), the bytes it took in the input, whether a \n ended it (false: the
// input ended first; line holds what there was) and whether it was longer
// than max (line then holds its first max bytes). err is nil, io.EOF (with
// n == 0: nothing left) or a read error.
func (r *lineReader) next() (line []byte, n int, complete, long bool, err error) {
	r.buf = r.buf[:0]
	for {
		frag, ferr := r.br.ReadSlice('\n')
		n += len(frag)
		// keep max+2 bytes at most: enough to tell a line of exactly max
		// bytes and its \r\n from a longer one
		if room := r.max + 2 - len(r.buf); room > 0 {
			r.buf = append(r.buf, frag[:min(room, len(frag))]...)
		}
		if ferr == bufio.ErrBufferFull {
			continue
		}
		if ferr == nil {
			complete = true
		} else if ferr != io.EOF || n == 0 {
			return nil, n, false, false, ferr
		}
		break
	}
	content := n
	b := r.buf
	if complete {
		content--
		if len(b) > 0 && b[len(b)-1] == '\n' {
			b = b[:len(b)-1]
		}
		if content > 0 && len(b) > 0 && b[len(b)-1] == '\r' && content == len(b) {
			b = b[:len(b)-1]
			content--
		}
	}
	if content > r.max {
		return b[:r.max], n, complete, true, nil
	}
	return b[:content], n, complete, false, nil
}
