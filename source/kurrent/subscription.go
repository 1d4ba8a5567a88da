package kurrent

// A running subscription: one goroutine receives from the client's subscription and Next
// hands its events, checkpoints and end to the runner.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/kurrent-io/KurrentDB-Client-Go/kurrentdb"
	"github.com/projector-dev/projector/projection"
	"github.com/projector-dev/projector/tracking"
)

type item struct {
	m   projection.Message
	err error
}

// subscription adapts a client subscription (whose Recv takes no context) to
// projection.Subscription: one goroutine receives, Next selects on its output and ctx.
type subscription struct {
	src    *Source
	client *kurrentdb.Client
	sub    *kurrentdb.Subscription
	cancel context.CancelFunc
	from   tracking.State
	out    chan item
	conv   converter // used by pump
	done   chan struct{}
	once   sync.Once
	wg     sync.WaitGroup
}

func (w *subscription) pump() {
	for {
		ev := w.sub.Recv()
		var it item
		switch {
		case ev.SubscriptionDropped != nil:
			err := ev.SubscriptionDropped.Error
			if err == nil {
				err = io.EOF
			}
			w.src.check(w.client, err)
			it.err = fmt.Errorf("kurrent: subscription dropped: %w", Classify(err))
		case ev.EventAppeared != nil:
			e := ev.EventAppeared.OriginalEvent()
			if e == nil || w.from.Done(e.Position.Commit) {
				continue
			}
			it.m = projection.Message{Kind: projection.EventMessage, Event: w.conv.event(e)}
		case ev.CheckPointReached != nil:
			it.m = projection.Message{Kind: projection.CheckpointMessage, Checkpoint: ev.CheckPointReached.Commit, Time: time.Now().UTC()}
		case ev.CaughtUp != nil:
			it.m = projection.Message{Kind: projection.CaughtUpMessage, Time: ev.CaughtUp.Date}
		default:
			continue // fell behind, or something newer than this client
		}
		select { // without a select on done while out has room
		case w.out <- it:
		default:
			select {
			case w.out <- it:
			case <-w.done:
				return
			}
		}
		if it.err != nil {
			return
		}
	}
}

// Next implements projection.Subscription.
func (w *subscription) Next(ctx context.Context) (projection.Message, error) {
	select { // a message ready is taken without a select on done and ctx
	case it := <-w.out:
		return it.m, it.err
	default:
	}
	select {
	case it := <-w.out:
		return it.m, it.err
	case <-w.done:
		return projection.Message{}, errors.New("kurrent: subscription closed")
	case <-ctx.Done():
		return projection.Message{}, ctx.Err()
	}
}

// Close implements projection.Subscription; it waits for the receiving goroutine to end.
func (w *subscription) Close() error {
	w.once.Do(func() {
		close(w.done)
		_ = w.sub.Close()
		w.cancel()
		w.wg.Wait()
	})
	return nil
}
