package clientcmd

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/schnitzel-stream/schnitzel/engine"
	"github.com/schnitzel-stream/schnitzel/internal/cli/exitcode"
	"github.com/schnitzel-stream/schnitzel/internal/serve/client"
)

func (o *Options) fleetCommand() *cobra.Command {
	var cn conn
	var config, template string
	var streams []string
	var asJSON bool
	root := &cobra.Command{
		Use:   "fleet",
		Short: "Run upstream's fleet (one graph per stream) under a running schnitzel serve",
		Long: `Start, stop and list the streams of an upstream fleet file (configs/fleet.yaml:
streams[], or the legacy cameras[]) as graphs of a running "schnitzel serve":
each stream becomes the graph fleet.<stream_id>, the graph template with that
stream's SS_* variables (SS_CAMERA_ID, SS_INPUT_URL, ...). The files are read
here and their text is sent to the server; the server opens no path a client names.

  schnitzel fleet start --config configs/fleet.yaml --graph-template dev_stream_template_v2.yaml
  schnitzel fleet status
  schnitzel fleet stop [--stream ID]...`,
	}
	o.register(root, &cn)
	root.PersistentFlags().BoolVar(&asJSON, "json", false, "print the API's JSON")

	start := &cobra.Command{
		Use: "start --config F --graph-template G [--stream ID]...", Short: "Start the fleet's streams as graphs", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			fleetYAML, err := os.ReadFile(config)
			if err != nil {
				return exitcode.Errorf(exitcode.Usage, "--config: %v", err)
			}
			tmpl, err := os.ReadFile(template)
			if err != nil {
				return exitcode.Errorf(exitcode.Usage, "--graph-template: %v", err)
			}
			c, err := o.client(&cn)
			if err != nil {
				return err
			}
			base, err := filepath.Abs(filepath.Dir(config))
			if err != nil {
				return exitcode.Errorf(exitcode.Usage, "--config: %v", err)
			}
			out, err := c.FleetStart(cmd.Context(), fleetYAML, tmpl, streams, base)
			if err != nil {
				// The server names the texts fleet.yaml and template.yaml:
				// point the diagnostics at the local files.
				return failure(renameDiags(err, map[string]string{"fleet.yaml": config, "template.yaml": template}))
			}
			return printFleet(cmd.OutOrStdout(), out, asJSON)
		},
	}
	start.Flags().StringVar(&config, "config", "", "fleet file (upstream's configs/fleet.yaml; required)")
	start.Flags().StringVar(&template, "graph-template", "", "graph template each stream runs (required)")
	start.Flags().StringSliceVar(&streams, "stream", nil, "only these stream ids (repeatable or comma list; default: every enabled stream)")
	_ = start.MarkFlagRequired("config")
	_ = start.MarkFlagRequired("graph-template")

	stop := &cobra.Command{
		Use: "stop [--stream ID]...", Short: "Stop and remove the fleet's graphs", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := o.client(&cn)
			if err != nil {
				return err
			}
			out, err := c.FleetStop(cmd.Context(), streams)
			if err != nil {
				return failure(err)
			}
			return printFleet(cmd.OutOrStdout(), out, asJSON)
		},
	}
	stop.Flags().StringSliceVar(&streams, "stream", nil, "only these stream ids (default: every fleet stream)")
	// Accepted for symmetry with start, so one command line can be edited
	// from start to stop; the server knows its fleet streams.
	stop.Flags().StringVar(&config, "config", "", "ignored (the server knows its fleet)")
	stop.Flags().StringVar(&template, "graph-template", "", "ignored")
	_ = stop.Flags().MarkHidden("config")
	_ = stop.Flags().MarkHidden("graph-template")

	status := &cobra.Command{
		Use: "status", Short: "List the fleet's streams and their graphs' states", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := o.client(&cn)
			if err != nil {
				return err
			}
			out, err := c.FleetStatus(cmd.Context())
			if err != nil {
				return failure(err)
			}
			return printFleet(cmd.OutOrStdout(), out, asJSON)
		},
	}
	root.AddCommand(start, stop, status)
	return root
}

// printFleet prints a fleet answer: a table of its streams when it has
// them, its lines, or else the JSON.
func printFleet(w io.Writer, raw json.RawMessage, asJSON bool) error {
	var v struct {
		Streams []map[string]any `json:"streams"`
		Lines   []string         `json:"lines"`
	}
	if asJSON || json.Unmarshal(raw, &v) != nil || (v.Streams == nil && v.Lines == nil) {
		var pretty any
		if json.Unmarshal(raw, &pretty) != nil {
			_, err := w.Write(append(raw, '\n'))
			return err
		}
		return writeJSON(w, pretty)
	}
	for _, l := range v.Lines {
		fmt.Fprintln(w, l)
	}
	if v.Streams != nil {
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "STREAM\tGRAPH\tACTION\tSTATE\tRESTARTS\tLAST-ERROR")
		for _, s := range v.Streams {
			str := func(k string) string {
				if x, ok := s[k].(string); ok && x != "" {
					return x
				}
				return "-"
			}
			last := str("last_error")
			if last == "-" {
				last = str("error")
			}
			restarts := "-"
			if n, ok := s["restarts"].(float64); ok {
				restarts = fmt.Sprint(int(n))
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", str("id"), str("graph"), str("action"), str("state"), restarts, oneLine(last, 80))
		}
		return tw.Flush()
	}
	return nil
}

// renameDiags replaces the server's names of the sent texts in an API
// error's diagnostics by the local file names.
func renameDiags(err error, names map[string]string) error {
	var ae *client.APIError
	if !errors.As(err, &ae) {
		return err
	}
	for _, ds := range []engine.Diags{ae.Errors, ae.Warnings} {
		for i := range ds {
			if local, ok := names[ds[i].File]; ok {
				ds[i].File = local
			}
		}
	}
	return err
}
