// Package redact hides secrets in URLs before they reach a log line, an
// error, a report or a packet. It is the one masker of the project: every
// place that shows a URL calls URL (one URL) or Text (free text that may
// quote URLs: log lines, error messages, ffmpeg's stderr), so a URL prints
// the same way everywhere.
//
// What is masked, each replaced by Mask ("***"):
//   - the whole userinfo: user and password each become ***, so
//     rtsp://admin:pw@cam/live becomes rtsp://***:***@cam/live and a lone
//     user part (often a token: https://TOKEN@host) becomes ***@. The user
//     name goes too because services put tokens there
//     (https://sk_live_x:@api, https://TOKEN:x-oauth-basic@host);
//   - the values of query (and fragment) parameters whose names look like
//     secrets (see SecretName): ?token=abc becomes ?token=***.
//
// Everything else stays byte-identical: scheme, host, port, path,
// parameter order, other parameters, escaping. The scan is byte-level and
// needs no successful parse, so malformed input is masked too; when the
// end of the userinfo is ambiguous (an unescaped '/', '?' or '#' in a
// password) more is masked rather than less.
package redact

import (
	"net/url"
	"strings"
)

// Mask replaces each secret.
const Mask = "***"

// URL returns raw with its userinfo and secret-looking parameter values
// masked. A string without secrets is returned unchanged.
func URL(raw string) string {
	if raw == "" {
		return raw
	}
	var b strings.Builder
	rest := raw
	if i := schemeEnd(raw); i > 0 {
		b.WriteString(raw[:i]) // "scheme://"
		rest = raw[i:]
		auth, after := splitAuthority(rest)
		b.WriteString(maskAuthority(auth))
		rest = after
	}
	// rest is path[?query][#fragment].
	path, query, frag := rest, "", ""
	hasQ, hasF := false, false
	if i := strings.IndexByte(path, '#'); i >= 0 {
		path, frag, hasF = path[:i], path[i+1:], true
	}
	if i := strings.IndexByte(path, '?'); i >= 0 {
		path, query, hasQ = path[:i], path[i+1:], true
	}
	b.WriteString(path)
	if hasQ {
		b.WriteByte('?')
		b.WriteString(maskParams(query))
	}
	if hasF {
		b.WriteByte('#')
		b.WriteString(maskParams(frag))
	}
	if b.Len() == len(raw) && b.String() == raw {
		return raw
	}
	return b.String()
}

// schemeEnd returns the length of a leading "scheme://", or 0.
func schemeEnd(s string) int {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case isAlpha(c):
		case i > 0 && (isDigit(c) || c == '+' || c == '-' || c == '.'):
		case i > 0 && c == ':':
			if strings.HasPrefix(s[i:], "://") {
				return i + 3
			}
			return 0
		default:
			return 0
		}
	}
	return 0
}

// splitAuthority splits what follows "scheme://" into the authority
// ([userinfo@]host[:port]) and the rest (path, query, fragment).
//
// The authority normally ends at the first '/', '?' or '#' and its userinfo
// at the last '@' inside it, as URL parsers split it (so an '@' in a
// password is masked with it). When the authority has no '@' but reads
// like "user:pass" (a ':' followed by something that is not a port) and an
// '@' follows later, the password held an unescaped '/', '?' or '#': the
// userinfo then runs to the last '@' of the string.
func splitAuthority(s string) (auth, rest string) {
	end := strings.IndexAny(s, "/?#")
	if end < 0 {
		end = len(s)
	}
	auth = s[:end]
	if !strings.Contains(auth, "@") && badPort(auth) {
		if at := strings.LastIndexByte(s, '@'); at >= end {
			// Extend to the host after that '@'.
			e := strings.IndexAny(s[at:], "/?#")
			if e < 0 {
				return s, ""
			}
			return s[:at+e], s[at+e:]
		}
	}
	return auth, s[end:]
}

// badPort reports whether host[:port] has a ':' followed by something that
// cannot be a port (bracketed IPv6 literals aside).
func badPort(hostport string) bool {
	if strings.HasPrefix(hostport, "[") {
		i := strings.IndexByte(hostport, ']')
		if i < 0 {
			return false // "[::1" : a broken literal, no password in it
		}
		hostport = hostport[i+1:]
		if hostport == "" {
			return false
		}
		if hostport[0] != ':' {
			return true
		}
		return !allDigits(hostport[1:])
	}
	i := strings.IndexByte(hostport, ':')
	if i < 0 {
		return false
	}
	return !allDigits(hostport[i+1:])
}

// maskAuthority masks the userinfo of [userinfo@]host[:port]. Without an
// '@' a bad port is taken for the start of a password cut short (Text
// stopped at a space or quote inside it) and masked.
func maskAuthority(auth string) string {
	at := strings.LastIndexByte(auth, '@')
	if at < 0 {
		if badPort(auth) && !strings.HasPrefix(auth, "[") {
			i := strings.IndexByte(auth, ':')
			return auth[:i+1] + Mask
		}
		return auth
	}
	userinfo, host := auth[:at], auth[at:]
	if strings.Contains(userinfo, ":") {
		return Mask + ":" + Mask + host
	}
	return Mask + host
}

// maskParams masks the values of secret-looking name=value pairs in a query
// string or fragment, split at '&' and ';'. Pairs keep their order and
// their bytes; an empty value stays empty.
func maskParams(q string) string {
	if q == "" || !strings.Contains(q, "=") {
		return q
	}
	var b strings.Builder
	b.Grow(len(q))
	for len(q) > 0 {
		i := strings.IndexAny(q, "&;")
		pair, sep := q, ""
		if i >= 0 {
			pair, sep, q = q[:i], q[i:i+1], q[i+1:]
		} else {
			q = ""
		}
		name, value, ok := strings.Cut(pair, "=")
		switch {
		case !ok || value == "":
		case SecretName(decodeName(name)):
			pair = name + "=" + Mask
		case strings.Contains(value, "://"):
			// A URL inside a parameter (redirect_uri=...) may carry its own.
			pair = name + "=" + URL(value)
		}
		b.WriteString(pair)
		b.WriteString(sep)
	}
	return b.String()
}

func decodeName(n string) string {
	if strings.ContainsAny(n, "%+") {
		if d, err := url.QueryUnescape(n); err == nil {
			return d
		}
	}
	return n
}

// exact are parameter names that carry secrets whatever they contain.
var exact = map[string]bool{
	"token": true, "key": true, "api_key": true, "apikey": true, "secret": true,
	"password": true, "passwd": true, "pass": true, "pwd": true, "sig": true,
	"signature": true, "auth": true, "authorization": true, "access_token": true,
	"code": true, "credential": true, "credentials": true, "session": true, "sessionid": true,
}

// within are substrings that make any name secret: authtoken, x_amz_security_token,
// client_secret, db_password, x_amz_signature, x_amz_credential, passphrase
// (SRT's encryption secret: srt://host?passphrase=...), privatekey.
var within = []string{"token", "secret", "passw", "passphrase", "privatekey", "apikey", "api_key", "signature", "credential"}

// suffixes are name endings that make a name secret: stream_key, hmac_sig,
// basic_auth, db_pass, db_pwd.
var suffixes = []string{"_key", "_sig", "_auth", "_pass", "_pwd"}

// SecretName reports whether a query parameter of this name carries a
// secret. Case-insensitive, '-' and '.' count as '_': the names token, key,
// api_key, apikey, secret, password, passwd, pass, pwd, sig, signature,
// auth, authorization, access_token, code, credential(s), session(id); any
// name containing token, secret, passw, passphrase, privatekey, apikey,
// api_key, signature or credential; any name ending in _key, _sig, _auth,
// _pass or _pwd.
func SecretName(name string) bool {
	n := strings.ToLower(strings.TrimSpace(name))
	n = strings.NewReplacer("-", "_", ".", "_").Replace(n)
	if exact[n] {
		return true
	}
	for _, w := range within {
		if strings.Contains(n, w) {
			return true
		}
	}
	for _, s := range suffixes {
		if strings.HasSuffix(n, s) {
			return true
		}
	}
	return false
}

func isAlpha(c byte) bool { return c|0x20 >= 'a' && c|0x20 <= 'z' }
func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if !isDigit(s[i]) {
			return false
		}
	}
	return true
}
