package ffmpeg

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// An input URL can carry credentials (rtsp://user:pass@cam/...,
// ?token=...), and a process's command line is readable by every local
// user (ps, /proc/PID/cmdline). So network inputs never go into ffmpeg's
// argv: ffmpeg reads a one-entry ffconcat script instead,
//
//	ffconcat version 1.0
//	file 'rtsp://user:pass@cam/live'
//	option rtsp_transport tcp
//
// and its command line says `-f concat -safe 0 -i pipe:3`. The script
// travels on an inherited pipe (fd 3) that nothing else can open, written
// once and closed; where fds cannot be inherited (Windows) it is a file
// in a private temporary directory (0700, file 0600), removed as soon as
// ffmpeg has opened its input. The concat demuxer passes the entry's
// packets through unchanged; its nested open needs -safe 0 (a URL is not a
// "safe" relative path) and an explicit protocol whitelist (the default
// one of a nested open allows only file,crypto,data).

// InputScript is an input that ffmpeg reads from a concat script.
type InputScript struct {
	URL  string
	Opts [][2]string // demuxer options for the entry, e.g. {rtsp_transport, tcp}
}

// scriptProtocols lets the nested open use any protocol a direct -i could
// (ffmpeg's input protocols; names a build lacks are ignored).
const scriptProtocols = "async,bluray,cache,concat,concatf,crypto,data,fd,ffrtmpcrypt,ffrtmphttp,file,ftp,gopher,gophers," +
	"hls,http,httpproxy,https,ipfs,ipns,mmsh,mmst,pipe,rist,rtmp,rtmpe,rtmps,rtmpt,rtmpte,rtmpts,rtp,sctp,sftp,srt,srtp," +
	"subfile,tcp,tls,udp,udplite,unix,zmq,amqp,librtmp,librtmpe,librtmps,librtmpt,librtmpte"

// Supported reports whether ffmpeg t reads this script: the concat
// demuxer's "option" directive came with ffmpeg 5.0.
func (s *InputScript) Supported(t Tool) bool { return len(s.Opts) == 0 || t.Modern() }

// args returns ffmpeg's input options for a script found at loc.
func (s *InputScript) args(loc string) []string {
	return []string{"-protocol_whitelist", scriptProtocols, "-f", "concat", "-safe", "0", "-i", loc}
}

// text renders the script. The concat parser reads it line by line, so a
// control character would start a new directive: refused.
func (s *InputScript) text() (string, error) {
	quote := func(v string) (string, error) {
		if i := strings.IndexFunc(v, func(r rune) bool { return r < 0x20 || r == 0x7f }); i >= 0 {
			return "", fmt.Errorf("input contains a control character (U+%04X)", v[i])
		}
		// Inside '...' nothing is special but the quote itself.
		return "'" + strings.ReplaceAll(v, "'", `'\''`) + "'", nil
	}
	var b strings.Builder
	b.WriteString("ffconcat version 1.0\n")
	u, err := quote(s.URL)
	if err != nil {
		return "", err
	}
	b.WriteString("file " + u + "\n")
	for _, o := range s.Opts {
		v, err := quote(o[1])
		if err != nil {
			return "", err
		}
		if strings.ContainsFunc(o[0], func(r rune) bool { return !(r == '_' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9') }) {
			return "", fmt.Errorf("bad option name %q", o[0])
		}
		b.WriteString("option " + o[0] + " " + v + "\n")
	}
	return b.String(), nil
}

// scriptHandoff is one script on its way to ffmpeg: loc goes into argv,
// extra into exec.Cmd.ExtraFiles; started is called once the process runs
// (or failed to start) and done once ffmpeg has opened its input or ended.
type scriptHandoff struct {
	loc     string
	extra   []*os.File
	started func()
	done    func()
}

// pipeHandoff hands the script over on fd 3: the read end is inherited,
// the write end (close-on-exec, so the child's EOF comes) is written and
// closed by us. Nothing reaches the disk.
func pipeHandoff(script string) (*scriptHandoff, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("input script pipe: %w", err)
	}
	return &scriptHandoff{
		loc:   "pipe:3",
		extra: []*os.File{r},
		started: func() {
			r.Close() // the child has its own copy
			// A goroutine: a script larger than the pipe buffer must not
			// block the start; it ends at EOF or when the child goes (EPIPE).
			go func() {
				_, _ = io.WriteString(w, script)
				w.Close()
			}()
		},
		done: func() {},
	}, nil
}

// fileHandoff writes the script to a private temporary directory; done
// removes it.
func fileHandoff(script string) (*scriptHandoff, error) {
	dir, err := os.MkdirTemp("", "schnitzel-input-")
	if err != nil {
		return nil, fmt.Errorf("input script: %w", err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("input script: %w", err)
	}
	path := filepath.Join(dir, "input.ffconcat")
	if err := os.WriteFile(path, []byte(script), 0o600); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("input script: %w", err)
	}
	remove := func() { _ = os.RemoveAll(dir) }
	return &scriptHandoff{loc: "file:" + path, started: func() {}, done: remove}, nil
}

// UseFileHandoff makes later Starts hand scripts over as private files
// (on or off; off restores the platform's default) and returns a function
// that undoes it. For tests that check the file handoff on Unix too; not
// safe while decoders start concurrently.
func UseFileHandoff(on bool) (restore func()) {
	old := newHandoff
	if on {
		newHandoff = fileHandoff
	} else {
		newHandoff = defaultHandoff
	}
	return func() { newHandoff = old }
}
