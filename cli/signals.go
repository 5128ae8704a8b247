package cli

import (
	"os"
	"os/signal"
	"syscall"
)

// notifySignals delivers SIGINT, SIGTERM and SIGHUP (CTRL_BREAK on Windows
// arrives as os.Interrupt): each is a graceful stop. SIGHUP included, so a
// closed SSH session drains and reports instead of dying (rc 129).
// SIGPIPE is ignored so that a closed stdout under a service manager does
// not kill the process mid-drain.
func notifySignals() <-chan os.Signal {
	ch := make(chan os.Signal, 4)
	signal.Notify(ch, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	ignoreSIGPIPE()
	return ch
}
