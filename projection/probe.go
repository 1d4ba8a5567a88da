// The probe of an idle live projection: it commits a checkpoint past events the projection
// ignores when the live subscription says nothing about them (see Prober).

package projection

import (
	"context"
	"time"
)

// probeTimeout bounds one probe (a head read and a filtered look-ahead).
const probeTimeout = 5 * time.Second

// armProbe schedules the next probe, when the source can probe and the subscription is live:
// CheckpointEvery after the last commit or the last probe, whichever came later.
func (b *batcher[Tx]) armProbe() {
	if b.header == nil || b.prober == nil || !b.caughtUp {
		return
	}
	last := b.lastCommit
	if b.lastProbe.After(last) {
		last = b.lastProbe
	}
	b.probeTimer.Stop()
	b.probeTimer.Reset(max(b.w.checkpointEvery()-time.Since(last), time.Millisecond))
}

// probe advances tracking past events the projection ignores when the live subscription says
// nothing about them (see Prober): with nothing pending and no commit for CheckpointEvery, it
// reads the head H of $all, and, only when H lies past the position reached, asks the source
// whether an event of the projection's topics not yet done lies at or before H. If none does,
// the exclusive checkpoint H+1 is committed as a server checkpoint would be. The head is read
// first: events written afterwards lie past H and are delivered by the subscription. A failed
// probe costs nothing but its retry, CheckpointEvery later.
func (b *batcher[Tx]) probe() result {
	if !b.caughtUp || len(b.batch) > 0 || b.cpArmed || b.next() != b.state {
		return result{} // the pending commit re-arms the probe
	}
	if time.Since(b.lastCommit) < b.w.checkpointEvery() {
		b.armProbe()
		return result{}
	}
	defer func() {
		b.lastProbe = time.Now() // once it has ended: the next one is CheckpointEvery later
		b.armProbe()
	}()
	ctx, cancel := context.WithTimeout(b.work, probeTimeout)
	defer cancel()
	head, _, err := b.header.Head(ctx)
	if err != nil || head.IsZero() || head.Commit <= b.state.Reached() {
		return result{} // unreachable (the subscription reports real outages), empty, or done
	}
	found, err := b.prober.Probe(ctx, b.w.topics, b.state, head.Commit)
	if err != nil || found {
		return result{} // the subscription delivers the event found
	}
	return b.serverCheckpoint(head.Commit + 1) // commits at once: CheckpointEvery has passed
}
