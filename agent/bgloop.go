package agent

import "context"

// bgLoop is a component's background goroutine: started by the component's
// Start under a context of its own (the loop outlives Start's context) and
// ended by its Stop, which cancels it and waits until it has returned, so
// nothing the loop does overlaps what Stop tears down after it. Every loop
// returns soon after its context ends (its etcd calls carry timeouts).
type bgLoop struct {
	cancel context.CancelFunc
	done   chan struct{}
}

// start runs f in a goroutine until stop.
func (l *bgLoop) start(f func(ctx context.Context)) {
	ctx, cancel := context.WithCancel(context.Background())
	l.cancel, l.done = cancel, make(chan struct{})
	go func() {
		defer close(l.done)
		f(ctx)
	}()
}

// running reports whether start was called.
func (l *bgLoop) running() bool { return l.cancel != nil }

// stop cancels the loop and waits for it; a loop never started is stopped.
func (l *bgLoop) stop() {
	if l.cancel == nil {
		return
	}
	l.cancel()
	<-l.done
}
