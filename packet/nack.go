package packet

import "errors"

// permanentError marks a delivery failure that a retry cannot fix (a
// receiver's 400 or 422, say): the packet's origin should not try again.
type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// Permanent wraps err, passed to Packet.Nack, to say that retrying is
// pointless: a durable queue moves the row straight to its dead letters
// with err as the reason, instead of scheduling another attempt.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &permanentError{err: err}
}

// IsPermanent reports whether err (or an error it wraps) was marked by
// Permanent.
func IsPermanent(err error) bool {
	var p *permanentError
	return errors.As(err, &p)
}
