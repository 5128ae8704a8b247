package cli

import (
	"os"
	"os/signal"
	"syscall"
)

// notifySignals delivers SIGINT and SIGTERM (CTRL_BREAK on Windows arrives
// as os.Interrupt). SIGPIPE is ignored so that a closed stdout under a
// service manager does not kill the process mid-drain.
func notifySignals() <-chan os.Signal {
	ch := make(chan os.Signal, 2)
	signal.Notify(ch, os.Interrupt, syscall.SIGTERM)
	ignoreSIGPIPE()
	return ch
}
