package plugin

import (
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
)

// Counter is one of a node's own metrics, a counter or a gauge (Store).
// Safe for concurrent use: the runtime reads it from another goroutine.
type Counter struct{ atomic.Int64 }

// Counters holds the metrics a node's Spec.Metrics declares. The registry
// makes one for every node it builds and hands it over in Env; a node
// keeps the *Counters from env.Counters() as an embedded field, which
// makes it a Metrics (the values, in declaration order), and takes its
// counters with Get:
//
//	type mySink struct {
//		*plugin.Counters
//		written *plugin.Counter
//	}
//
//	func newMySink(c Config, env plugin.Env) (plugin.Processor, error) {
//		cs := env.Counters()
//		return &mySink{Counters: cs, written: cs.Get("written_total")}, nil
//	}
//
// So a metric is declared once, with its kind and help, and cannot be
// reported under a name the spec does not know.
type Counters struct {
	strict bool // built by the registry: only declared names
	mu     sync.Mutex
	names  []string
	vals   []*Counter
	reads  []func() int64 // set by Read: the value is read, not counted
}

func newCounters(specs []MetricSpec) *Counters {
	c := &Counters{strict: true}
	for _, m := range specs {
		c.names = append(c.names, m.Name)
		c.vals = append(c.vals, new(Counter))
		c.reads = append(c.reads, nil)
	}
	return c
}

// Counters returns the node's declared metrics. Outside the registry (a
// test constructing a node itself) it returns a new set that makes each
// counter on first Get, so a constructor calls it once and hands the set
// to whatever part of the node takes counters too.
func (e Env) Counters() *Counters {
	if e.counters == nil {
		return &Counters{}
	}
	return e.counters
}

// Get returns the counter name. A name Spec.Metrics does not declare is a
// programming error: Get panics, which fails the node's construction (and
// its conformance test) with the name.
func (c *Counters) Get(name string) *Counter {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.vals[c.index(name)]
}

// Read makes name's reported value f(), called each time the metrics are
// read, for a value kept elsewhere (a client's drop count, a queue's
// depth). f must be safe to call from another goroutine. An undeclared
// name panics, as for Get.
func (c *Counters) Read(name string, f func() int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.reads[c.index(name)] = f
}

// index finds name; c.mu is held.
func (c *Counters) index(name string) int {
	if i := slices.Index(c.names, name); i >= 0 {
		return i
	}
	if c.strict {
		panic(fmt.Sprintf("plugin: metric %q is not declared in Spec.Metrics (declared: %v)", name, c.names))
	}
	c.names = append(c.names, name)
	c.vals = append(c.vals, new(Counter))
	c.reads = append(c.reads, nil)
	return len(c.names) - 1
}

// Metrics implements the Metrics interface: every declared metric, in
// order.
func (c *Counters) Metrics() []Metric {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]Metric, len(c.vals))
	for i, v := range c.vals {
		val := v.Load()
		if f := c.reads[i]; f != nil {
			val = f()
		}
		out[i] = Metric{Name: c.names[i], Value: val}
	}
	return out
}
