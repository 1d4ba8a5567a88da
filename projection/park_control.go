// Operator commands for a parked stream: ResumeStream replays its parked events in order
// through the handler, SkipStream moves them to the dead letters; both run in the projection's
// worker, between its batches and under its lease, so they take effect before any later event
// of the stream.

package projection

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/projector-dev/projector/tracking"
)

// The operator's commands for a parked stream, as parkRequest and the errors name them.
const (
	CommandResumeStream Command = "resume-stream" // Runner.ResumeStream
	CommandSkipStream   Command = "skip-stream"   // Runner.SkipStream
)

// parkRequest is a Runner.ResumeStream or Runner.SkipStream call waiting for the worker.
type parkRequest struct {
	ctx    context.Context
	cmd    Command
	stream string
	done   chan parkAnswer // capacity 1: the worker never blocks on the answer
}

type parkAnswer struct {
	events int
	err    error
}

// ResumeStream replays the parked events of stream through projection's handler, in log
// order, and unparks the stream, in one store transaction of the projection's worker (between
// its batches, under its lease), so each is applied exactly once and before any later event of
// the stream. It returns how many events it replayed. When the handler fails again on one, the
// events before it are replayed (and unparked), it and the rest stay parked with the new
// error, and the error wraps ErrStillFailing.
//
// It returns an error wrapping tracking.ErrUnknownProjection for an unknown name, ErrNotLeader
// when this process does not lead the projection, and ErrNotParked when the stream is not
// parked. The worker takes the command between batches or retries; until then it waits, within
// ctx.
func (r *Runner[Tx]) ResumeStream(ctx context.Context, projection, stream string) (int, error) {
	return r.parkCommand(ctx, CommandResumeStream, projection, stream)
}

// SkipStream unparks stream without applying its parked events: they move to the store's dead
// letters (when it keeps them, DeadLetterer; they are dropped otherwise), each with the error
// that parked it, so that an operator can still replay or purge them there; later events of the
// stream are handled again. It returns how many events it moved; its errors are those of
// ResumeStream (but ErrStillFailing).
func (r *Runner[Tx]) SkipStream(ctx context.Context, projection, stream string) (int, error) {
	return r.parkCommand(ctx, CommandSkipStream, projection, stream)
}

func (r *Runner[Tx]) parkCommand(ctx context.Context, cmd Command, projection, stream string) (int, error) {
	w, ok := r.streamWorker(projection, stream)
	if !ok {
		return 0, fmt.Errorf("%s %q: %w", cmd, projection, tracking.ErrUnknownProjection)
	}
	if _, ok := w.parker(); !ok {
		return 0, fmt.Errorf("%s %q stream %q: the store parks no events: %w", cmd, projection, stream, ErrNotParked)
	}
	req := &parkRequest{ctx: ctx, cmd: cmd, stream: stream, done: make(chan parkAnswer, 1)}
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		if !w.status().Leader {
			return 0, fmt.Errorf("%s %q stream %q: %w", cmd, projection, stream, ErrNotLeader)
		}
		select {
		case w.parkReqs <- req:
			a := <-req.done // the worker answers within ctx
			return a.events, a.err
		case <-tick.C: // leadership may have been lost meanwhile
		case <-ctx.Done():
			return 0, fmt.Errorf("%s %q stream %q: the projection did not take the command in time: %w", cmd, projection, stream, ctx.Err())
		}
	}
}

// runParkRequest carries out req between batches and answers it.
func (w *worker[Tx]) runParkRequest(ctx, lead context.Context, req *parkRequest) {
	n, err := w.parkCommand(ctx, lead, req)
	req.done <- parkAnswer{events: n, err: err}
}

func (w *worker[Tx]) parkCommand(ctx, lead context.Context, req *parkRequest) (int, error) {
	what := fmt.Sprintf("%s %q stream %q", req.cmd, w.name, req.stream)
	if !w.parked[req.stream] {
		return 0, fmt.Errorf("%s: %w", what, ErrNotParked)
	}
	if ctx.Err() != nil {
		return 0, fmt.Errorf("%s: the runner is shutting down", what)
	}
	// The transaction runs under the lease (the store checks it before committing) and ends
	// with the caller's context or a shutdown.
	rctx, cancel := context.WithCancel(lead)
	defer cancel()
	defer context.AfterFunc(req.ctx, cancel)()
	defer context.AfterFunc(ctx, cancel)()
	w.mu.Lock()
	state := w.st.Tracking
	w.mu.Unlock()
	if req.cmd == CommandSkipStream {
		return w.skipStream(rctx, what, state, req.stream)
	}
	return w.replayStream(rctx, what, state, req.stream)
}

// replayStream replays the parked events of stream in one transaction that leaves tracking at
// state. When one fails, a second transaction replays those before it and records its new
// error.
func (w *worker[Tx]) replayStream(ctx context.Context, what string, state tracking.State, stream string) (int, error) {
	pk, _ := w.parker()
	replay := func(failed *handlerError) (int, error) {
		replayed := 0
		start := time.Now()
		err := w.r.store.Apply(ctx, w.name, state, state, func(ctx context.Context, tx Tx) error {
			evs, err := pk.Parked(ctx, tx, w.parkOwner(), stream)
			if err != nil {
				return fmt.Errorf("read the parked events: %w", err)
			}
			if len(evs) == 0 {
				return ErrNotParked
			}
			n := len(evs)
			if failed != nil {
				n = min(failed.index, n)
			}
			for i := range n {
				if err := w.replayOne(ctx, tx, evs[i].Event); err != nil {
					return &handlerError{index: i, err: err}
				}
			}
			if n > 0 {
				if err := pk.Unpark(ctx, tx, w.parkOwner(), stream, evs[n-1].Event.Position); err != nil {
					return fmt.Errorf("unpark: %w", err)
				}
			}
			if n < len(evs) {
				if err := pk.ReparkFailed(ctx, tx, w.parkOwner(), evs[n].Event, failed.err); err != nil {
					return fmt.Errorf("record the new error: %w", err)
				}
			}
			replayed = n
			if ctx.Err() != nil {
				return fmt.Errorf("not committing the replay: %w", context.Cause(ctx))
			}
			return nil
		})
		if err == nil {
			w.r.opts.Observer.BatchCommitted(CommittedBatch{Projection: w.name, Events: replayed, Duration: time.Since(start), State: state})
		}
		return replayed, err
	}
	n, err := replay(nil)
	var he *handlerError
	if errors.As(err, &he) {
		n, err = replay(he)
		if err == nil {
			return n, fmt.Errorf("%s: replayed %d events, then %w: %w", what, n, ErrStillFailing, he.err)
		}
	}
	switch {
	case errors.Is(err, ErrNotParked):
		w.markParked(stream, false)
		w.publishParked()
		return 0, fmt.Errorf("%s: %w", what, ErrNotParked)
	case err != nil:
		return n, fmt.Errorf("%s: %w", what, err)
	}
	w.markParked(stream, false)
	w.publishParked()
	return n, nil
}

// replayOne applies one parked event: through the batch handler for a batch projection.
// Queued statements are flushed after it, so that a failure names its event.
func (w *worker[Tx]) replayOne(ctx context.Context, tx Tx, e Event) error {
	var err error
	if bp, ok := w.p.(BatchProjection[Tx]); ok {
		err = w.handleBatch(ctx, tx, bp, []Event{e})
	} else {
		err = w.handle(ctx, tx, e)
	}
	if f, ok := any(tx).(Flusher); ok && err == nil {
		err = f.Flush(ctx)
	}
	if err != nil {
		return fmt.Errorf("event %s (%s) at %v in stream %q revision %d: %w", e.ID, e.Type, e.Position, e.Stream, e.Revision, err)
	}
	return nil
}

// skipStream moves the parked events of stream to the dead letters (when the store keeps
// them) and unparks it, in one transaction that leaves tracking at state.
func (w *worker[Tx]) skipStream(ctx context.Context, what string, state tracking.State, stream string) (int, error) {
	pk, _ := w.parker()
	dl, dead := any(w.r.store).(DeadLetterer[Tx])
	var moved []FailedEvent
	err := w.r.store.Apply(ctx, w.name, state, state, func(ctx context.Context, tx Tx) error {
		moved = moved[:0]
		evs, err := pk.Parked(ctx, tx, w.parkOwner(), stream)
		if err != nil {
			return fmt.Errorf("read the parked events: %w", err)
		}
		if len(evs) == 0 {
			return ErrNotParked
		}
		cause := errors.New(evs[0].Error)
		for i, pe := range evs {
			c := cause
			if i > 0 {
				c = fmt.Errorf("parked behind event %s at %v of stream %q: %s", evs[0].Event.ID, evs[0].Event.Position, stream, evs[0].Error)
				if pe.Error != "" {
					c = errors.New(pe.Error)
				}
			}
			if dead {
				if err := dl.DeadLetter(ctx, tx, w.name, pe.Event, c); err != nil {
					return fmt.Errorf("dead-letter event %s at %v: %w", pe.Event.ID, pe.Event.Position, err)
				}
			}
			moved = append(moved, FailedEvent{Projection: w.name, Event: pe.Event, Err: c, Policy: PolicySkip})
		}
		if err := pk.Unpark(ctx, tx, w.parkOwner(), stream, evs[len(evs)-1].Event.Position); err != nil {
			return fmt.Errorf("unpark: %w", err)
		}
		if ctx.Err() != nil {
			return fmt.Errorf("not committing the skip: %w", context.Cause(ctx))
		}
		return nil
	})
	switch {
	case errors.Is(err, ErrNotParked):
		w.markParked(stream, false)
		w.publishParked()
		return 0, fmt.Errorf("%s: %w", what, ErrNotParked)
	case err != nil:
		return 0, fmt.Errorf("%s: %w", what, err)
	}
	for _, f := range moved {
		if dead {
			w.r.opts.Observer.EventDeadLettered(f)
		} else {
			w.r.opts.Observer.EventFailed(f)
		}
	}
	w.markParked(stream, false)
	w.publishParked()
	return len(moved), nil
}

// streamWorker returns the worker that handles stream's events of projection: the
// projection's, or the partition's that the stream hashes to.
func (r *Runner[Tx]) streamWorker(projection, stream string) (*worker[Tx], bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if ws, ok := r.groups[projection]; ok {
		return ws[Partition(stream, len(ws))], true
	}
	w, ok := r.byName[projection]
	return w, ok
}

// ParkedStreams returns the parked streams of projection as the store keeps them (on any
// replica: it reads the store, not the worker), oldest parking first; none when the store parks
// no events. It returns an error wrapping tracking.ErrUnknownProjection for an unknown name.
func (r *Runner[Tx]) ParkedStreams(ctx context.Context, projection string) ([]ParkedStream, error) {
	w, ok := r.streamWorker(projection, "")
	if !ok {
		return nil, fmt.Errorf("parked streams of %q: %w", projection, tracking.ErrUnknownProjection)
	}
	pk, ok := w.parker()
	if !ok {
		return nil, nil
	}
	return pk.ParkedStreams(ctx, projection)
}
