// Command schnitzel runs and validates stream-processing node graphs.
package main

import (
	"os"

	"github.com/schnitzel-stream/schnitzel/cli"
	"github.com/schnitzel-stream/schnitzel/nodes/all"
)

func main() { os.Exit(cli.Main(os.Args[1:], all.Registry())) }
