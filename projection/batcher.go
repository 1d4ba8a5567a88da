// The batcher: events and server checkpoints pending on top of the committed state, and when
// to commit them (batch full, batch interval while catching up, nothing more ready while live,
// checkpoint throttle, caught up, shutdown).

package projection

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/projector-dev/projector/internal/backoff"
	"github.com/projector-dev/projector/tracking"
)

// batcher is the state of one consume session: the committed tracking state, the events and
// server checkpoint pending on top of it, and the timers that commit them.
type batcher[Tx any] struct {
	w               *worker[Tx]
	ctx, lead, work context.Context
	bo              *backoff.Backoff
	header          Header // nil when the source reports no head
	prober          Prober // nil when the source cannot probe

	state      tracking.State // committed
	batch      []Event        // pending
	checkpoint uint64         // highest server checkpoint seen (exclusive)
	// passed is the position of the last event of another partition delivered (zero when
	// none, or not partitioned): this partition has considered it, so tracking's Last may
	// move to it like the position of an event processed; passing tells that it lies past
	// what is committed.
	passed     Position
	passing    bool
	caughtUp   bool
	lastCommit time.Time
	batchTimer *time.Timer // runs while the batch is not empty and the subscription catches up
	cpTimer    *time.Timer // runs while cpArmed: a checkpoint waits for CheckpointEvery
	cpArmed    bool
	probeTimer *time.Timer // runs while live with a source that probes (see Prober)
	lastProbe  time.Time   // when the last probe ended
}

// next is the state after committing what is pending.
func (b *batcher[Tx]) next() tracking.State {
	n := b.state
	if len(b.batch) > 0 {
		n.Last = b.batch[len(b.batch)-1].Position
	}
	if b.passed.Compare(n.Last) > 0 {
		n.Last = b.passed
	}
	if b.checkpoint > n.Checkpoint {
		n.Checkpoint = b.checkpoint
	}
	if n.Checkpoint <= n.Last.Commit {
		n.Checkpoint = 0
	}
	return n
}

// flush commits what is pending, if anything.
func (b *batcher[Tx]) flush() result {
	w := b.w
	b.batchTimer.Stop()
	b.cpTimer.Stop()
	b.cpArmed = false
	n := b.next()
	if n == b.state {
		return result{}
	}
	if err := tracking.CheckStorable(n); err != nil {
		err = fmt.Errorf("projection %q: %w", w.name, err)
		w.reportError(kindStore, err)
		return result{out: outcomeStopped, err: err}
	}
	if res := w.commit(b.ctx, b.lead, span{prev: b.state, next: n, batch: b.batch}); res.out != outcomeOK {
		if res.out == outcomeEnded && len(b.batch) > 0 {
			w.reportError(kindStore, fmt.Errorf("projection %q: shutdown: a batch of %d events was rolled back after the drain timeout: %v", w.name, len(b.batch), res.err))
		}
		return res
	}
	b.state = n
	b.batch = b.batch[:0]
	b.passing = false
	b.lastCommit = time.Now()
	b.bo.Reset()
	b.armProbe()
	return result{}
}

// drain commits what is pending as the session ends.
func (b *batcher[Tx]) drain() result {
	b.flush() // under the lease, which outlives ctx by the drain timeout
	return result{out: outcomeEnded}
}

// event adds e to the batch, committing when the batch is full, or skips it when a skip
// command names it.
func (b *batcher[Tx]) event(e Event) result {
	w := b.w
	if b.state.Done(e.Position.Commit) || (len(b.batch) > 0 && e.Position.Compare(b.batch[len(b.batch)-1].Position) <= 0) ||
		e.Position.Compare(b.passed) <= 0 {
		return result{} // already processed: a resume may re-deliver the event at Last
	}
	if w.part != nil && !w.part.owns(e) {
		return b.foreign(e)
	}
	if f := w.skip; f != nil && e.Position.Compare(f.Position) >= 0 {
		if res := b.flush(); res.out != outcomeOK {
			return res
		}
		w.skip = nil
		if e.ID == f.EventID && e.Position == f.Position {
			n := tracking.State{Last: e.Position}
			if res := w.commit(b.ctx, b.lead, span{prev: b.state, next: n, batch: []Event{e}, skip: errors.New(f.Error)}); res.out != outcomeOK {
				w.skip = f
				return res
			}
			b.state = n
			return result{}
		}
		w.reportError(kindSource, fmt.Errorf("projection %q: skip of event %s at %v: the subscription delivers event %s at %v instead; nothing was skipped", w.name, f.EventID, f.Position, e.ID, e.Position))
	}
	b.batch = append(b.batch, e)
	if len(b.batch) == 1 {
		if !b.caughtUp { // once live, consume commits the batch as soon as nothing more is ready
			b.batchTimer.Reset(w.opts.BatchInterval)
		}
		w.mu.Lock()
		w.st.OldestPending = e.Created
		w.caughtUp = false
		w.mu.Unlock()
	}
	if len(b.batch) >= w.opts.BatchSize {
		return b.flush()
	}
	return result{}
}

// foreign records e, an event of another partition, as considered: its position is committed
// with the next batch; while catching up, on its own once CheckpointEvery has passed since the
// last commit (as a server checkpoint is); once live, as soon as nothing more is ready (consume),
// so that the projection's position, the lowest of its partitions', keeps pace with every
// event and Wait returns for it without a delay.
func (b *batcher[Tx]) foreign(e Event) result {
	b.passed, b.passing = e.Position, true
	if len(b.batch) > 0 || b.cpArmed || b.caughtUp {
		return result{}
	}
	b.cpTimer.Reset(max(b.w.checkpointEvery()-time.Since(b.lastCommit), 0))
	b.cpArmed = true
	return result{}
}

// pending reports whether events are waiting to be committed: the batch's, or the position of
// events of other partitions.
func (b *batcher[Tx]) pending() bool { return len(b.batch) > 0 || b.passing }

// serverCheckpoint records a checkpoint of the server's: it is committed with the next batch,
// or on its own once CheckpointEvery has passed since the last commit.
func (b *batcher[Tx]) serverCheckpoint(cp uint64) result {
	if cp <= b.checkpoint {
		return result{}
	}
	b.checkpoint = cp
	if len(b.batch) > 0 || b.cpArmed || b.next() == b.state {
		return result{} // committed with the batch, or already scheduled, or nothing new
	}
	wait := b.w.checkpointEvery() - time.Since(b.lastCommit)
	if b.caughtUp && wait <= 0 {
		return b.flush()
	}
	b.cpTimer.Reset(max(wait, 0))
	b.cpArmed = true
	return result{}
}

// caughtUpNow marks the projection live and commits what is pending.
func (b *batcher[Tx]) caughtUpNow() result {
	w := b.w
	b.caughtUp, w.live = true, true
	w.enter(StateLive)
	if res := b.flush(); res.out != outcomeOK {
		return res
	}
	b.armProbe()
	w.recovered() // the source answers and the store commits (or had nothing to)
	w.mu.Lock()
	w.caughtUp = len(b.batch) == 0
	w.mu.Unlock()
	return result{}
}

func stoppedTimer() *time.Timer {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return t
}
