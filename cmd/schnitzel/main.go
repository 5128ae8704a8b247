// Command schnitzel runs and validates stream-processing node graphs.
package main

import (
	"os"

	"github.com/schnitzel-stream/schnitzel/internal/cli"
)

func main() { os.Exit(cli.Main(os.Args[1:])) }
