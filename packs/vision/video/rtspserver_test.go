package video

import (
	"bufio"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"github.com/schnitzel-stream/schnitzel/internal/logbuf"
	"github.com/schnitzel-stream/schnitzel/internal/poll"
	"io"
	"net"
	"net/textproto"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// rtspServer is a small RTSP relay for tests, on loopback: one publisher
// (ffmpeg -f rtsp, ANNOUNCE/SETUP/RECORD over TCP-interleaved RTP) and any
// number of readers (DESCRIBE/SETUP/PLAY, TCP-interleaved). Packets from the
// publisher are copied to every reader. As real relays do (mediamtx), it
// drops its readers when the publisher goes away and answers DESCRIBE with
// 404 while nobody publishes. gortsplib, the usual Go server library, is
// not served by the module proxy here, and ffmpeg's `-rtsp_flags listen`
// only receives, so the protocol subset we need lives here.
type rtspServer struct {
	t    testing.TB
	addr string
	ln   net.Listener
	wg   sync.WaitGroup

	mu      sync.Mutex
	conns   map[net.Conn]struct{}
	sdp     []byte
	readers map[*rtspReader]struct{}

	paused       atomic.Bool            // drop media (a stalled camera)
	auth         atomic.Pointer[string] // "user:pass": readers must send it (Basic), else 401
	unauthorized atomic.Int64           // DESCRIBEs answered 401
	forwarded    atomic.Int64           // RTP packets written to readers
	forwardedUDP atomic.Int64           // of which as UDP datagrams
	plays        atomic.Int64           // PLAY requests answered
}

type rtspReader struct {
	c        net.Conn
	wmu      *sync.Mutex
	rtp, rtc byte
	// UDP readers (RTP/AVP with client_port): media goes as datagrams
	// from udpRTP/udpRTCP to the reader's ports instead of interleaved.
	udpRTP, udpRTCP *net.UDPConn
	toRTP, toRTCP   *net.UDPAddr
}

// startRTSPServer listens on addr ("127.0.0.1:0" for a free port).
func startRTSPServer(t testing.TB, addr string) *rtspServer {
	t.Helper()
	var ln net.Listener
	var err error
	// A restart on the same port may race the old socket's release.
	for i := 0; i < 50; i++ {
		if ln, err = net.Listen("tcp", addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("rtsp server listen %s: %v", addr, err)
	}
	s := &rtspServer{t: t, addr: ln.Addr().String(), ln: ln, conns: map[net.Conn]struct{}{}, readers: map[*rtspReader]struct{}{}}
	s.wg.Add(1)
	go s.accept()
	t.Cleanup(s.close)
	return s
}

// requireBasic makes readers authenticate with user:pass (Basic).
func (s *rtspServer) requireBasic(userPass string) { s.auth.Store(&userPass) }

func (s *rtspServer) url(path string) string { return "rtsp://" + s.addr + "/" + path }

func (s *rtspServer) accept() {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		s.conns[c] = struct{}{}
		s.mu.Unlock()
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.handle(c)
		}()
	}
}

// close stops listening and drops every connection (a server going down).
func (s *rtspServer) close() {
	s.ln.Close()
	s.mu.Lock()
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

func (s *rtspServer) handle(c net.Conn) {
	defer func() {
		c.Close()
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
	}()
	br := bufio.NewReader(c)
	tp := textproto.NewReader(br)
	wmu := &sync.Mutex{}
	write := func(b []byte) error {
		wmu.Lock()
		defer wmu.Unlock()
		_ = c.SetWriteDeadline(time.Now().Add(2 * time.Second))
		_, err := c.Write(b)
		return err
	}
	publisher := false
	var reader *rtspReader
	defer func() {
		if publisher {
			// The source went away: drop the readers, forget the stream.
			s.mu.Lock()
			s.sdp = nil
			for r := range s.readers {
				r.c.Close()
			}
			s.mu.Unlock()
		}
		if reader != nil {
			s.mu.Lock()
			delete(s.readers, reader)
			s.mu.Unlock()
		}
	}()
	var rtpCh, rtcpCh byte
	var udp *rtspReader // a reader's UDP sockets between SETUP and PLAY
	defer func() {
		if udp != nil {
			udp.udpRTP.Close()
			udp.udpRTCP.Close()
		}
	}()
	for {
		b, err := br.Peek(1)
		if err != nil {
			return
		}
		if b[0] == '$' {
			var hdr [4]byte
			if _, err := io.ReadFull(br, hdr[:]); err != nil {
				return
			}
			pkt := make([]byte, binary.BigEndian.Uint16(hdr[2:]))
			if _, err := io.ReadFull(br, pkt); err != nil {
				return
			}
			if publisher {
				s.forward(hdr[1]%2 == 1, pkt)
			}
			continue
		}
		line, err := tp.ReadLine()
		if err != nil {
			return
		}
		if line == "" {
			continue
		}
		f := strings.Fields(line)
		if len(f) != 3 {
			return
		}
		method, url := f[0], f[1]
		h, err := tp.ReadMIMEHeader()
		if err != nil {
			return
		}
		var body []byte
		if n, _ := strconv.Atoi(h.Get("Content-Length")); n > 0 {
			body = make([]byte, n)
			if _, err := io.ReadFull(br, body); err != nil {
				return
			}
		}
		status, extra, respBody := "200 OK", "", []byte(nil)
		switch method {
		case "OPTIONS":
			extra = "Public: OPTIONS, DESCRIBE, ANNOUNCE, SETUP, PLAY, RECORD, TEARDOWN, GET_PARAMETER\r\n"
		case "ANNOUNCE":
			s.mu.Lock()
			if s.sdp != nil {
				status = "455 Method Not Valid in This State"
			} else {
				s.sdp, publisher = body, true
			}
			s.mu.Unlock()
		case "DESCRIBE":
			s.mu.Lock()
			sdp := s.sdp
			s.mu.Unlock()
			if a := s.auth.Load(); a != nil && h.Get("Authorization") != "Basic "+base64.StdEncoding.EncodeToString([]byte(*a)) {
				status, extra = "401 Unauthorized", "WWW-Authenticate: Basic realm=\"cam\"\r\n"
				s.unauthorized.Add(1)
			} else if sdp == nil {
				status = "404 Not Found"
			} else {
				extra = "Content-Base: " + strings.TrimSuffix(url, "/") + "/\r\nContent-Type: application/sdp\r\n"
				respBody = sdp
			}
		case "SETUP":
			tr := h.Get("Transport")
			if i := strings.Index(tr, "client_port="); i >= 0 && !publisher && !strings.Contains(tr, "TCP") {
				var x, y int
				fmt.Sscanf(tr[i+len("client_port="):], "%d-%d", &x, &y)
				host := c.RemoteAddr().(*net.TCPAddr).IP
				u := &rtspReader{toRTP: &net.UDPAddr{IP: host, Port: x}, toRTCP: &net.UDPAddr{IP: host, Port: y}}
				var err1, err2 error
				u.udpRTP, err1 = net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
				u.udpRTCP, err2 = net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
				if err1 != nil || err2 != nil {
					status = "500 Internal Server Error"
					break
				}
				udp = u
				extra = fmt.Sprintf("Transport: RTP/AVP;unicast;client_port=%d-%d;server_port=%d-%d\r\nSession: 12345678;timeout=60\r\n",
					x, y, u.udpRTP.LocalAddr().(*net.UDPAddr).Port, u.udpRTCP.LocalAddr().(*net.UDPAddr).Port)
				break
			}
			if !strings.Contains(tr, "TCP") {
				status = "461 Unsupported Transport"
				break
			}
			a, b := byte(0), byte(1)
			if i := strings.Index(tr, "interleaved="); i >= 0 {
				var x, y int
				fmt.Sscanf(tr[i+len("interleaved="):], "%d-%d", &x, &y)
				a, b = byte(x), byte(y)
			}
			rtpCh, rtcpCh = a, b
			mode := ""
			if publisher {
				mode = ";mode=record"
			}
			extra = fmt.Sprintf("Transport: RTP/AVP/TCP;unicast;interleaved=%d-%d%s\r\nSession: 12345678;timeout=60\r\n", a, b, mode)
		case "RECORD":
			extra = "Session: 12345678\r\n"
		case "PLAY":
			extra = "Session: 12345678\r\n"
			reader = &rtspReader{c: c, wmu: wmu, rtp: rtpCh, rtc: rtcpCh}
			if udp != nil {
				reader.udpRTP, reader.udpRTCP, reader.toRTP, reader.toRTCP = udp.udpRTP, udp.udpRTCP, udp.toRTP, udp.toRTCP
			}
		case "GET_PARAMETER", "SET_PARAMETER":
		case "TEARDOWN":
			_ = write([]byte("RTSP/1.0 200 OK\r\nCSeq: " + h.Get("CSeq") + "\r\n\r\n"))
			return
		default:
			status = "501 Not Implemented"
		}
		resp := "RTSP/1.0 " + status + "\r\nCSeq: " + h.Get("CSeq") + "\r\n" + extra +
			"Content-Length: " + strconv.Itoa(len(respBody)) + "\r\n\r\n"
		if err := write(append([]byte(resp), respBody...)); err != nil {
			return
		}
		if method == "PLAY" {
			// Register only after the reply, so media never precedes it.
			s.mu.Lock()
			s.readers[reader] = struct{}{}
			s.mu.Unlock()
			s.plays.Add(1)
		}
	}
}

// forward copies one publisher packet to every reader.
func (s *rtspServer) forward(rtcp bool, pkt []byte) {
	if s.paused.Load() {
		return
	}
	s.mu.Lock()
	rs := make([]*rtspReader, 0, len(s.readers))
	for r := range s.readers {
		rs = append(rs, r)
	}
	s.mu.Unlock()
	for _, r := range rs {
		if r.udpRTP != nil {
			conn, to := r.udpRTP, r.toRTP
			if rtcp {
				conn, to = r.udpRTCP, r.toRTCP
			}
			if _, err := conn.WriteToUDP(pkt, to); err == nil && !rtcp {
				s.forwarded.Add(1)
				s.forwardedUDP.Add(1)
			}
			continue
		}
		ch := r.rtp
		if rtcp {
			ch = r.rtc
		}
		frame := make([]byte, 4+len(pkt))
		frame[0], frame[1] = '$', ch
		binary.BigEndian.PutUint16(frame[2:], uint16(len(pkt)))
		copy(frame[4:], pkt)
		r.wmu.Lock()
		_ = r.c.SetWriteDeadline(time.Now().Add(2 * time.Second))
		_, err := r.c.Write(frame)
		r.wmu.Unlock()
		if err != nil {
			r.c.Close()
			continue
		}
		if !rtcp {
			s.forwarded.Add(1)
		}
	}
}

// publisher is an ffmpeg pushing an H.264 test pattern to url.
type publisher struct {
	cmd  *exec.Cmd
	done chan struct{}
	out  *logbuf.Buffer
}

func startPublisher(t testing.TB, url string) *publisher {
	t.Helper()
	needFFmpeg(t)
	out := &logbuf.Buffer{}
	cmd := exec.Command("ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error", "-re",
		"-f", "lavfi", "-i", "testsrc=size=320x240:rate=25",
		"-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-g", "10", "-pix_fmt", "yuv420p",
		"-f", "rtsp", "-rtsp_transport", "tcp", url)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start publisher: %v", err)
	}
	p := &publisher{cmd: cmd, done: make(chan struct{}), out: out}
	go func() {
		_ = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(p.stop)
	return p
}

// waitPublished waits until the relay has a stream to serve, so a test
// that wants a first attempt to succeed does not race the publisher.
func (s *rtspServer) waitPublished(t testing.TB) {
	t.Helper()
	poll.Until(t, 15*time.Second, "the publisher to announce", func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.sdp != nil
	})
}

// stop kills the publisher and reaps it.
func (p *publisher) stop() {
	_ = p.cmd.Process.Kill()
	<-p.done
}

// runToEnd runs a live source until it ends by itself (max_frames), failing
// with the publisher's output when it errs or takes longer than d.
func runToEnd(t testing.TB, n any, rec *recorder, d time.Duration, pub *publisher) {
	t.Helper()
	stop, done := runSource(t, n, rec)
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run: %v\npublisher: %s", err, pub.out)
		}
	case <-time.After(d):
		stop()
		t.Fatalf("source did not end within %v; got %d frames\npublisher: %s", d, len(rec.packets()), pub.out)
	}
}
