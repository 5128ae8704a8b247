// Package exitcode carries a process exit code through command errors, so
// that only main calls os.Exit. Codes: 0 ok or degraded, 1 runtime error,
// 2 usage error or invalid graph/config, 3 degraded with --fail-on-degraded.
package exitcode

import "fmt"

// Exit codes.
const (
	OK      = 0
	Runtime = 1
	Usage   = 2
	// Degraded: the run ended degraded (packets dropped, failed, dead-
	// lettered or abandoned) and --fail-on-degraded was given.
	Degraded = 3
)

// Error is an error with the exit code it should cause.
type Error struct {
	Code int
	Err  error
}

func (e *Error) Error() string {
	if e.Err == nil {
		return fmt.Sprintf("exit %d", e.Code)
	}
	return e.Err.Error()
}

func (e *Error) Unwrap() error { return e.Err }

// New wraps err with code.
func New(code int, err error) error { return &Error{Code: code, Err: err} }

// Errorf formats an error with code.
func Errorf(code int, format string, args ...any) error {
	return &Error{Code: code, Err: fmt.Errorf(format, args...)}
}
