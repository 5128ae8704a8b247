//go:build !windows

package service

import "context"

// runAsService: Unix service managers speak signals (handled by the run
// command) and sd_notify (internal/ops/sdnotify).
func runAsService(ctx context.Context, run func(context.Context) error) error { return run(ctx) }
