package redact

import (
	"regexp"
	"strings"
)

var (
	// A bearer token anywhere ("Authorization: Bearer eyJ...").
	bearerRE = regexp.MustCompile(`(?i)\b(bearer)\s+[A-Za-z0-9\-._~+/]+=*`)
	// The value of an Authorization header, whatever its scheme.
	authHeaderRE = regexp.MustCompile(`(?i)\b((?:proxy-)?authorization["']?\s*[:=]\s*["']?)(?:(basic|digest|token|bearer)\s+)?[^\s"',]+`)
	// name=value after '?', '&' or ';' outside a URL: a form body, a query
	// string quoted without its URL.
	pairRE = regexp.MustCompile(`([?&;])([A-Za-z0-9_.%+\-]+)=([^&;#\s"'<>]+)`)
)

// closers pairs a character that may open a quoted URL with the one that
// closes it.
var closers = map[byte]byte{'"': '"', '\'': '\'', '`': '`', '(': ')', '[': ']', '<': '>', '{': '}'}

// Text masks every URL found in s (as URL does) and, outside URLs, bearer
// tokens, Authorization header values and secret-looking name=value pairs
// that follow '?', '&' or ';'. Text without secrets is returned unchanged.
//
// A URL runs from its scheme to the next whitespace. When a quote or
// bracket stands right before the scheme, the URL ends at the last
// matching closer ("http://h/?token=abc": ends before the quote), or at the
// last one when the first would cut a password short ('rtsp://u:it's@cam/x'
// stays whole); otherwise trailing punctuation (".,;:!)]}'\"") is left
// out.
func Text(s string) string {
	if !strings.ContainsAny(s, "@=") && !strings.Contains(s, "://") && !hasFold(s, "bearer") && !hasFold(s, "authorization") {
		return s // fast path: nothing that could hold a secret
	}
	var b strings.Builder
	last := 0
	for i := 0; i < len(s); {
		j := strings.Index(s[i:], "://")
		if j < 0 {
			break
		}
		j += i
		start := j
		for start > last && isSchemeByte(s[start-1]) {
			start--
		}
		for start < j && !isAlpha(s[start]) { // a scheme starts with a letter
			start++
		}
		if start == j {
			i = j + 3
			continue
		}
		end := j + 3
		for end < len(s) && !isSpace(s[end]) {
			end++
		}
		stop := urlEnd(s, start, end)
		b.WriteString(s[last:start])
		b.WriteString(URL(s[start:stop]))
		last, i = stop, end
	}
	if last == 0 {
		return maskLoose(s)
	}
	b.WriteString(s[last:])
	return maskLoose(b.String())
}

// urlEnd picks the end of the URL in s[start:end] (end is at whitespace).
func urlEnd(s string, start, end int) int {
	if start > 0 {
		if c, ok := closers[s[start-1]]; ok {
			if k := strings.IndexByte(s[start:end], c); k > 0 {
				if !cutUserinfo(s[start : start+k]) {
					return start + k
				}
				return start + strings.LastIndexByte(s[start:end], c)
			}
		}
	}
	for end > start && strings.IndexByte(".,;:!)]}'\"`>", s[end-1]) >= 0 {
		end--
	}
	return end
}

// maskLoose masks the secrets that are not inside a URL.
func maskLoose(s string) string {
	if strings.ContainsAny(s, "?&;") && strings.Contains(s, "=") {
		s = pairRE.ReplaceAllStringFunc(s, func(m string) string {
			sub := pairRE.FindStringSubmatch(m)
			if strings.HasPrefix(sub[3], Mask) || !SecretName(decodeName(sub[2])) {
				return m
			}
			return sub[1] + sub[2] + "=" + Mask
		})
	}
	if hasFold(s, "authorization") {
		s = authHeaderRE.ReplaceAllStringFunc(s, func(m string) string {
			sub := authHeaderRE.FindStringSubmatch(m)
			if sub[2] != "" {
				return sub[1] + sub[2] + " " + Mask
			}
			return sub[1] + Mask
		})
	}
	if hasFold(s, "bearer") {
		s = bearerRE.ReplaceAllString(s, "${1} "+Mask)
	}
	return s
}

// cutUserinfo reports whether u's authority reads like a userinfo cut
// short: no '@' and a ':' followed by something that is not a port.
func cutUserinfo(u string) bool {
	i := schemeEnd(u)
	if i == 0 {
		return false
	}
	auth, _ := splitAuthority(u[i:])
	return !strings.Contains(auth, "@") && badPort(auth)
}

func isSchemeByte(c byte) bool { return isAlpha(c) || isDigit(c) || c == '+' || c == '-' || c == '.' }

func isSpace(c byte) bool { return c <= ' ' || c == 0x7f }

// hasFold reports whether s contains the lower-case ASCII word sub, in any
// case, without allocating (Text runs on every log attribute).
func hasFold(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i]|0x20 != sub[0] {
			continue
		}
		if strings.EqualFold(s[i:i+len(sub)], sub) {
			return true
		}
	}
	return false
}
