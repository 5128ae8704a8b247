package runtime

import "context"

// Close closes the nodes of an Executor that will not Run (a failure
// between New and Run, such as a metrics port in use): Run closes them
// itself. Bounded by Options.CloseAfter; every close error is joined.
func (x *Executor) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), x.opts.CloseAfter)
	defer cancel()
	return x.closeAll(ctx)
}
