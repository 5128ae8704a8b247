// Command benthos-bench is Benthos core (pure + io components) built as a
// yardstick for schnitzel's throughput benchmarks. It lives in its own module
// so that the main schnitzel module never depends on Benthos.
package main

import (
	"context"

	_ "github.com/redpanda-data/benthos/v4/public/components/io"
	_ "github.com/redpanda-data/benthos/v4/public/components/pure"
	"github.com/redpanda-data/benthos/v4/public/service"
)

func main() {
	service.RunCLI(context.Background())
}
