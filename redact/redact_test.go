package redact

import (
	"net/url"
	"strings"
	"testing"
)

func TestURL(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"issue example", "rtsp://admin:pw@cam/live?token=abc", "rtsp://***:***@cam/live?token=***"},
		{"no secret", "rtsp://10.0.0.5:554/stream", "rtsp://10.0.0.5:554/stream"},
		{"user only is a token", "https://ghp_abc123@github.com/x", "https://***@github.com/x"},
		{"token as user, empty password", "https://sk_live_1:@api.example.com/v1", "https://***:***@api.example.com/v1"},
		{"at in password", "rtsp://admin:p@ss@cam/x", "rtsp://***:***@cam/x"},
		{"slash in password", "rtsp://admin:pa/ss@cam/x", "rtsp://***:***@cam/x"},
		{"question mark in password", "rtsp://admin:pa?ss@cam:554/x?a=1", "rtsp://***:***@cam:554/x?a=1"},
		{"percent-encoded password", "http://us%40er:p%2Fw@h:1/p", "http://***:***@h:1/p"},
		{"percent-encoded name", "http://h/p?to%6Ben=abc&x=1", "http://h/p?to%6Ben=***&x=1"},
		{"percent-encoded value", "http://h/p?token=a%20b%26c&x=1", "http://h/p?token=***&x=1"},
		{"ipv6 host", "rtsp://admin:pw@[fe80::1%25eth0]:554/s?sig=zz", "rtsp://***:***@[fe80::1%25eth0]:554/s?sig=***"},
		{"ipv6 no userinfo", "http://[::1]:8080/x?key=k", "http://[::1]:8080/x?key=***"},
		{"broken ipv6", "http://u:pw@[::1:bad/x", "http://***:***@[::1:bad/x"},
		{"fragment kept", "http://h/api?x=1&access_token=abc#f", "http://h/api?x=1&access_token=***#f"},
		{"fragment params", "https://h/cb#access_token=abc&state=s", "https://h/cb#access_token=***&state=s"},
		{"repeated params", "http://h/?token=a&token=b&x=1&token=c", "http://h/?token=***&token=***&x=1&token=***"},
		{"uppercase names", "http://h/?API_KEY=k1;Sig=zz&Password=p", "http://h/?API_KEY=***;Sig=***&Password=***"},
		{"suffixes and substrings", "http://h/?stream_key=a&client_secret=b&X-Amz-Signature=c&authtoken=d&db_pass=e",
			"http://h/?stream_key=***&client_secret=***&X-Amz-Signature=***&authtoken=***&db_pass=***"},
		{"srt passphrase, private key", "srt://h:9000?passphrase=a&streamid=cam1&privatekey=b",
			"srt://h:9000?passphrase=***&streamid=cam1&privatekey=***"},
		{"every listed name", "http://h/?token=1&key=2&api_key=3&apikey=4&secret=5&password=6&pass=7&sig=8&signature=9&auth=10&access_token=11",
			"http://h/?token=***&key=***&api_key=***&apikey=***&secret=***&password=***&pass=***&sig=***&signature=***&auth=***&access_token=***"},
		{"harmless params", "http://h/?x=1&keyframe=2&monkey=3&q=token", "http://h/?x=1&keyframe=2&monkey=3&q=token"},
		{"empty value stays", "http://h/?token=&x=1", "http://h/?token=&x=1"},
		{"no value", "http://h/?token&x=1", "http://h/?token&x=1"},
		{"nested url", "http://h/login?next=http://u:pw@in/x", "http://h/login?next=http://***:***@in/x"},
		{"path with at", "http://host/users/@me?x=1", "http://host/users/@me?x=1"},
		{"no scheme", "cam.local/live?token=abc", "cam.local/live?token=***"},
		{"not a url", "not a url", "not a url"},
		{"mail address", "a@b.com", "a@b.com"},
		{"already masked", "rtsp://***:***@cam/live?token=***", "rtsp://***:***@cam/live?token=***"},
		{"cut password", "rtsp://admin:it", "rtsp://admin:***"},
		{"empty", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := URL(tt.in); got != tt.want {
				t.Errorf("URL(%q)\n got %q\nwant %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestText(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"issue example", "open rtsp://admin:pw@cam/live?token=abc failed", "open rtsp://***:***@cam/live?token=*** failed"},
		{"go url.Error", `Get "http://u:p@h/x?token=abc&n=1": dial tcp: refused`, `Get "http://***:***@h/x?token=***&n=1": dial tcp: refused`},
		{"ffmpeg quote", "[error] rtsp://u:s3cret@h:1/a: Connection refused", "[error] rtsp://***:***@h:1/a: Connection refused"},
		{"ffmpeg input line", "Input #0, rtsp, from 'rtsp://admin:pw@cam/x?sig=1':", "Input #0, rtsp, from 'rtsp://***:***@cam/x?sig=***':"},
		{"quote in password", "Impossible to open 'rtsp://admin:it's@cam/x'", "Impossible to open 'rtsp://***:***@cam/x'"},
		{"sentence end", "cannot open rtsp://a:b@cam/x.", "cannot open rtsp://***:***@cam/x."},
		{"parenthesised", "camera (rtsp://a:b@cam/x?key=k) lost", "camera (rtsp://***:***@cam/x?key=***) lost"},
		{"two urls", "two urls rtsp://a:b@h1 and rtsp://c:d@h2", "two urls rtsp://***:***@h1 and rtsp://***:***@h2"},
		{"url then pairs", "url=rtsp://a:b@h/x error=boom", "url=rtsp://***:***@h/x error=boom"},
		{"bearer", "Authorization: Bearer eyJhbGciOi.J9.x-y_z", "Authorization: Bearer ***"},
		{"basic header", "authorization=Basic dXNlcjpwdw== sent", "authorization=Basic *** sent"},
		{"form body", "body a=1&password=hunter2&b=2", "body a=1&password=***&b=2"},
		{"plain", "plain message, nothing secret", "plain message, nothing secret"},
		{"mail", "mail a@b.com", "mail a@b.com"},
		{"exit code", "exit code=1 status=2", "exit code=1 status=2"},
		{"basic word", "basic auth failed", "basic auth failed"},
		{"bare scheme", "see :// here", "see :// here"},
		{"json", `{"u":"http://h/?token=abc","n":1}`, `{"u":"http://h/?token=***","n":1}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Text(tt.in); got != tt.want {
				t.Errorf("Text(%q)\n got %q\nwant %q", tt.in, got, tt.want)
			}
		})
	}
}

// TestSame: one URL prints the same way alone, inside text and quoted.
func TestSame(t *testing.T) {
	const in, want = "rtsp://admin:pw@cam/live?token=abc", "rtsp://***:***@cam/live?token=***"
	for _, s := range []string{URL(in), Text(in), strings.TrimSuffix(strings.TrimPrefix(Text(`"`+in+`"`), `"`), `"`)} {
		if s != want {
			t.Errorf("got %q, want %q", s, want)
		}
	}
}

func FuzzURL(f *testing.F) {
	f.Add("rtsp", "admin", "pw", "cam", "/live", "token", "abc")
	f.Add("https", "us@er", "p@ss/w?rd#", "[::1]:8080", "/a b", "API_KEY", "k&1")
	f.Add("http", "", "x", "h", "", "sig", "=")
	f.Fuzz(func(t *testing.T, scheme, user, pass, host, path, name, value string) {
		// Arbitrary input: no panic, and masking twice changes nothing.
		for _, s := range []string{scheme + user + pass + host + path + name + value, user + "://" + pass + "@" + host} {
			once := URL(s)
			if URL(once) != once {
				t.Errorf("URL not idempotent on %q: %q then %q", s, once, URL(once))
			}
			_ = Text(s)
		}
		// A well-formed URL built from the parts: the marked password and
		// token never survive, alone or inside text.
		if scheme == "" || !isAlpha(scheme[0]) || schemeEnd(scheme+"://") != len(scheme)+3 {
			scheme = "rtsp"
		}
		const mark = "Zq9" // cannot come from the other parts, which lose it
		clean := func(s string) string { return strings.ReplaceAll(s, mark, "") }
		h := strings.Map(func(r rune) rune {
			if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '.' || r == '-' {
				return r
			}
			return -1
		}, strings.ToLower(host))
		if h == "" {
			h = "cam"
		}
		pw := mark + clean(pass)
		tok := mark + clean(value)
		if !SecretName(name) {
			name = "token"
		}
		u := url.URL{Scheme: scheme, User: url.UserPassword(clean(user), pw), Host: h, Path: "/" + clean(path),
			RawQuery: url.Values{name: {tok}, "x": {"1"}}.Encode()}
		raw := u.String()
		for _, got := range []string{URL(raw), Text("open " + raw + ": failed"), Text("'" + raw + "'")} {
			if strings.Contains(got, mark) {
				t.Fatalf("secret survived: %q -> %q", raw, got)
			}
		}
	})
}

// BenchmarkText is the masking handler's cost per log attribute: a plain
// message (fast path), a key=value line without secrets, one with a URL.
func BenchmarkText(b *testing.B) {
	for _, bc := range []struct{ name, s string }{
		{"plain", "frames decoded for camera cam1, 25 fps"},
		{"pairs", "node=cam1 state=running frames=1234"},
		{"url", "open rtsp://admin:pw@10.0.0.5:554/live?token=abc failed: refused"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_ = Text(bc.s)
			}
		})
	}
}
