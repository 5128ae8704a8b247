package durable

// pipeline is the commits a node has handed to the queue's writer and not
// collected yet, oldest first: the node takes its next batch while they
// commit, so the writer commits several batches in one transaction. The
// rows in flight are bounded by max. The sink and the ack sink share it.
type pipeline[F flight] struct {
	q    []F
	rows int
	max  int
}

// flight is one commit in the pipeline.
type flight interface {
	Done() <-chan struct{} // closed when the commit has finished
	Rows() int
}

func (p *pipeline[F]) add(f F) {
	p.q = append(p.q, f)
	p.rows += f.Rows()
}

// next pops the oldest flight to collect: any, when all is set; else the
// oldest if it has finished, or while more than max rows are in flight.
// ok is false when there is nothing to collect now.
func (p *pipeline[F]) next(all bool) (f F, ok bool) {
	var zero F
	if len(p.q) == 0 {
		return zero, false
	}
	f = p.q[0]
	if !all && p.rows <= p.max {
		select {
		case <-f.Done():
		default:
			return zero, false
		}
	}
	p.q[0] = zero
	p.q = p.q[1:]
	p.rows -= f.Rows()
	return f, true
}
