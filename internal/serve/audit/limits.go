package audit

// Limits are the rotation bounds in force (bytes per file, files kept):
// the health route reports them as upstream's audit_retention.
func (l *Log) Limits() (maxBytes int64, maxFiles int) { return l.maxBytes, l.maxFiles }
