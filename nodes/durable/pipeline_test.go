package durable

import "testing"

type testFlight struct {
	done chan struct{}
	rows int
}

func (f testFlight) Done() <-chan struct{} { return f.done }
func (f testFlight) Rows() int             { return f.rows }

func TestPipelineNext(t *testing.T) {
	finished := func(rows int) testFlight { c := make(chan struct{}); close(c); return testFlight{c, rows} }
	pending := func(rows int) testFlight { return testFlight{make(chan struct{}), rows} }

	p := pipeline[testFlight]{max: 10}
	p.add(finished(4))
	p.add(pending(4))
	p.add(finished(4)) // behind a pending one: order is kept
	if f, ok := p.next(false); !ok || f.rows != 4 || p.rows != 8 {
		t.Fatalf("the finished oldest first: ok=%v rows in flight %d", ok, p.rows)
	}
	if _, ok := p.next(false); ok {
		t.Fatal("took a pending flight while under the bound")
	}
	p.add(pending(4)) // 12 rows > max 10: the oldest must be collected
	if _, ok := p.next(false); !ok || p.rows != 8 {
		t.Fatalf("over the bound: want the oldest collected, rows %d", p.rows)
	}
	n := 0
	for {
		if _, ok := p.next(true); !ok {
			break
		}
		n++
	}
	if n != 2 || p.rows != 0 || len(p.q) != 0 {
		t.Fatalf("all: collected %d, rows %d, left %d", n, p.rows, len(p.q))
	}
}
