//go:build windows

package service

import (
	"context"
	"errors"
	"fmt"
	"time"

	"golang.org/x/sys/windows/svc"
)

func runAsService(ctx context.Context, run func(context.Context) error) error {
	isService, err := svc.IsWindowsService()
	if err != nil {
		return fmt.Errorf("detect Windows service: %w", err)
	}
	if !isService {
		return run(ctx)
	}
	h := &scmHandler{ctx: ctx, run: run}
	// The name is ignored for SERVICE_WIN32_OWN_PROCESS services.
	if err := svc.Run(DefaultName, h); err != nil {
		return fmt.Errorf("windows service: %w", err)
	}
	return h.err
}

type scmHandler struct {
	ctx context.Context
	run func(context.Context) error
	err error
}

// Execute implements svc.Handler: run in a goroutine, SCM stop/shutdown →
// cancel, report StopPending with checkpoints while the graph drains.
func (h *scmHandler) Execute(_ []string, req <-chan svc.ChangeRequest, status chan<- svc.Status) (bool, uint32) {
	status <- svc.Status{State: svc.StartPending}
	ctx, cancel := context.WithCancel(h.ctx)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- h.run(ctx) }()
	status <- svc.Status{State: svc.Running, Accepts: svc.AcceptStop | svc.AcceptShutdown}
	stopping := false
	exit := func(err error) (bool, uint32) {
		if stopping && errors.Is(err, context.Canceled) {
			err = nil // the stop we asked for, not a failure
		}
		h.err = err
		if err != nil {
			return true, 1 // service-specific failure: recovery actions apply
		}
		return false, 0
	}
	for {
		select {
		case err := <-done:
			return exit(err)
		case c := <-req:
			switch c.Cmd {
			case svc.Interrogate:
				status <- c.CurrentStatus
			case svc.Stop, svc.Shutdown:
				hint := uint32(StopTimeout.Milliseconds())
				status <- svc.Status{State: svc.StopPending, WaitHint: hint}
				stopping = true
				cancel()
				tick := time.NewTicker(2 * time.Second)
				defer tick.Stop()
				for checkpoint := uint32(1); ; checkpoint++ {
					select {
					case err := <-done:
						return exit(err)
					case <-tick.C:
						status <- svc.Status{State: svc.StopPending, CheckPoint: checkpoint, WaitHint: hint}
					case c := <-req:
						if c.Cmd == svc.Interrogate {
							status <- c.CurrentStatus
						}
					}
				}
			}
		}
	}
}
