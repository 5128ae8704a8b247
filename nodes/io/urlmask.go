package ionodes

import "github.com/schnitzel-stream/schnitzel/redact"

// maskURL masks a URL for logs, errors and meta.http: redact.URL, the
// project's one masker (userinfo and secret-looking parameters become ***).
func maskURL(raw string) string { return redact.URL(raw) }
