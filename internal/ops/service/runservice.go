package service

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
)

// RunAsService runs run the way the service manager expects and returns its
// error. Call it from the run command around the whole run (graph loading
// included), after setting up signal handling:
//
//   - It first applies the environment a launchd or Windows definition
//     passes: SCHNITZEL_ENV_FILE is loaded into the environment and the
//     process changes to SCHNITZEL_WORKDIR (systemd does both itself).
//   - On Windows, when started by the service control manager, it speaks the
//     SCM protocol: an SCM stop or shutdown cancels run's context; run's
//     error makes the service exit with a failure (so recovery restarts it).
//   - Everywhere else it calls run(ctx) directly.
func RunAsService(ctx context.Context, run func(context.Context) error) error {
	if err := ApplyServiceEnv(); err != nil {
		return err
	}
	return runAsService(ctx, run)
}

// ApplyServiceEnv loads $SCHNITZEL_ENV_FILE and changes to
// $SCHNITZEL_WORKDIR when they are set.
func ApplyServiceEnv() error {
	if f := os.Getenv(EnvFileVar); f != "" {
		if _, err := os.Stat(f); errors.Is(err, fs.ErrNotExist) {
			// Optional, as systemd's EnvironmentFile=-, but a typo in the
			// path must not pass unnoticed (the logger does not exist yet).
			fmt.Fprintf(os.Stderr, "warning: %s=%s does not exist: no variables loaded from it\n", EnvFileVar, f)
		}
		if err := LoadEnvFile(f); err != nil {
			return err
		}
	}
	if d := os.Getenv(WorkdirVar); d != "" {
		if err := os.Chdir(d); err != nil {
			return fmt.Errorf("%s: change working directory: %w", WorkdirVar, err)
		}
	}
	return nil
}
