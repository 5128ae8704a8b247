package ionodes

import (
	"net/url"
	"strings"
)

// maskURL hides the password of a user:pass@ URL as upstream's mask_url does
// (the user name stays, the password becomes ***), so that logs, errors and
// meta.http never carry the secret. A URL that does not parse is reduced to
// its scheme and host part up to the '@', for the same reason.
func maskURL(raw string) string {
	if !strings.Contains(raw, "://") {
		return raw
	}
	u, err := url.Parse(raw)
	if err != nil {
		scheme, rest, _ := strings.Cut(raw, "://")
		if at := strings.LastIndex(rest, "@"); at >= 0 {
			return scheme + "://***@" + rest[at+1:]
		}
		return raw
	}
	if u.User == nil {
		return raw
	}
	_, hasPass := u.User.Password()
	user := url.User(u.User.Username()).String() // the user name, escaped
	u.User = nil
	s := u.String()
	if !strings.HasPrefix(s, u.Scheme+"://") {
		return u.Scheme + "://***@" + u.Host // never return the secret
	}
	if hasPass {
		user += ":***"
	}
	return u.Scheme + "://" + user + "@" + s[len(u.Scheme)+3:]
}
