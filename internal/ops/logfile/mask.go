package logfile

import (
	"context"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
)

// Mask is what replaces a secret.
const Mask = "***"

var (
	// scheme://userinfo@ — userinfo has no '/', '@' or whitespace.
	userinfoRE = regexp.MustCompile(`([A-Za-z][A-Za-z0-9+.\-]*://)([^/@\s?#]+)@`)
	// name=value in a query string or form body; names that carry secrets.
	queryRE = regexp.MustCompile(`(?i)([?&;](?:[a-z0-9_\-]*(?:token|secret|passw(?:or)?d|pwd|api[_-]?key|apikey|access[_-]?key|auth|signature|sig|credential|session)[a-z0-9_\-]*|key|code)=)([^&;#\s"']+)`)
	// Authorization: Bearer xyz / Basic xyz.
	bearerRE = regexp.MustCompile(`(?i)\b(bearer|basic)\s+[A-Za-z0-9\-._~+/]+=*`)
)

// MaskString masks secrets inside URLs and headers found anywhere in s:
// passwords in userinfo (rtsp://user:pass@cam → rtsp://user:***@cam; a lone
// user part, often a token, is masked whole), secret-looking query parameters
// (?token=…, &api_key=…, &sig=…) and bearer/basic credentials.
func MaskString(s string) string {
	if !strings.ContainsAny(s, "@=") && !strings.Contains(strings.ToLower(s), "bearer") &&
		!strings.Contains(strings.ToLower(s), "basic") {
		return s // fast path: nothing that could hold a secret
	}
	s = userinfoRE.ReplaceAllStringFunc(s, func(m string) string {
		sub := userinfoRE.FindStringSubmatch(m)
		scheme, info := sub[1], sub[2]
		if user, _, ok := strings.Cut(info, ":"); ok {
			return scheme + user + ":" + Mask + "@"
		}
		return scheme + Mask + "@"
	})
	s = queryRE.ReplaceAllString(s, "${1}"+Mask)
	s = bearerRE.ReplaceAllString(s, "${1} "+Mask)
	return s
}

// MaskingHandler wraps a slog.Handler and masks secrets (MaskString) in the
// message and in every string-like attribute value, including errors,
// fmt.Stringers and attributes inside groups.
type MaskingHandler struct{ next slog.Handler }

// NewMaskingHandler returns h with masking in front of it.
func NewMaskingHandler(h slog.Handler) *MaskingHandler { return &MaskingHandler{next: h} }

// Enabled implements slog.Handler.
func (h *MaskingHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.next.Enabled(ctx, l)
}

// Handle implements slog.Handler.
func (h *MaskingHandler) Handle(ctx context.Context, r slog.Record) error {
	out := slog.NewRecord(r.Time, r.Level, MaskString(r.Message), r.PC)
	r.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(maskAttr(a))
		return true
	})
	return h.next.Handle(ctx, out)
}

// WithAttrs implements slog.Handler.
func (h *MaskingHandler) WithAttrs(as []slog.Attr) slog.Handler {
	masked := make([]slog.Attr, len(as))
	for i, a := range as {
		masked[i] = maskAttr(a)
	}
	return &MaskingHandler{next: h.next.WithAttrs(masked)}
}

// WithGroup implements slog.Handler.
func (h *MaskingHandler) WithGroup(name string) slog.Handler {
	return &MaskingHandler{next: h.next.WithGroup(name)}
}

func maskAttr(a slog.Attr) slog.Attr {
	v := a.Value.Resolve()
	switch v.Kind() {
	case slog.KindString:
		return slog.String(a.Key, MaskString(v.String()))
	case slog.KindGroup:
		g := v.Group()
		out := make([]slog.Attr, len(g))
		for i, ga := range g {
			out[i] = maskAttr(ga)
		}
		return slog.Attr{Key: a.Key, Value: slog.GroupValue(out...)}
	case slog.KindAny:
		switch x := v.Any().(type) {
		case error:
			return slog.String(a.Key, MaskString(x.Error()))
		case fmt.Stringer:
			return slog.String(a.Key, MaskString(x.String()))
		}
	}
	return slog.Attr{Key: a.Key, Value: v}
}

var _ slog.Handler = (*MaskingHandler)(nil)
