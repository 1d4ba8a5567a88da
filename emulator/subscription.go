package emulator

import (
	"math"

	"github.com/google/uuid"
	"github.com/kurrent-io/KurrentDB-Client-Go/protos/kurrentdb/protocols/v1/streams"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Subscriptions read the log themselves, page by page, from their own
// cursor; when they reach the end they wait for the store's broadcast (a
// channel closed on each commit). So a subscription holds no buffer of its
// own beyond one page, never falls behind, and never sends fell_behind; a
// slow consumer only slows its own sends (gRPC flow control), never appends
// or other subscribers.

// subscriptionWatch is what a subscription waits on, captured when it starts.
type subscriptionWatch struct {
	drop <-chan struct{}
	done <-chan struct{}
}

func (s *Store) watch() subscriptionWatch {
	return subscriptionWatch{drop: s.drop, done: s.done}
}

// wait blocks until notify is closed (a commit: nil) or the subscription
// must end (the error to end with: cancellation, DropSubscriptions, Close).
func (s *Store) wait(snd *sender, w subscriptionWatch, notify <-chan struct{}) error {
	ctx := snd.srv.Context()
	select {
	case <-notify:
		return nil
	case <-ctx.Done():
		return status.FromContextError(ctx.Err()).Err()
	case <-w.drop:
		return s.droppedWith()
	case <-w.done:
		return status.Error(codes.Unavailable, "Server Is Shutting Down")
	}
}

// droppedWith is the error of the last DropSubscriptions.
func (s *Store) droppedWith() error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.dropErr
}

// ended checks, without blocking, whether the subscription must end.
func (s *Store) ended(snd *sender, w subscriptionWatch) error {
	select {
	case <-w.drop:
	case <-w.done:
	case <-snd.srv.Context().Done():
	default:
		return nil
	}
	return s.wait(snd, w, nil)
}

// orig is the record a page item stands for in its stream or in $all: the
// link when there is one, else the event.
func (it pageItem) orig() *record {
	if it.link != nil {
		return it.link
	}
	return it.ev
}

// allSubscription is the state of one $all subscription.
type allSubscription struct {
	s   *Store
	snd *sender
	ro  *readOptions

	cursor int    // index of the next record to examine
	c      uint64 // position of the last event delivered, or the start
	hasC   bool   // false while c is (-1,-1): nothing delivered from Start
	live   bool

	// Filtered subscriptions only.
	regIdx  int    // log length when the subscription was registered
	counter uint64 // events considered (catch-up) or committed (live)
	cp      uint64 // catch-up checkpoint: last event sent, or a later page start
	hasCp   bool
	lastCp  uint64 // last checkpoint sent
	sentCp  bool
	scanned int // records considered by the last page
	// cands holds a filtered page's records between copy and filter.
	cands allCandidates
}

// allPage is one page of a $all subscription.
type allPage struct {
	items   []pageItem
	notify  <-chan struct{} // the broadcast channel to wait on
	atEnd   bool            // the page reached the end of the log
	end     uint64          // the writer's end offset when it was read
	startAt uint64          // the position the page started at
	logLen  int             // the number of records in the log when it was read
}

// subscribeAll serves a subscription to $all, unfiltered (confirmation,
// catch-up, caught_up{position}, live) or filtered (confirmation, catch-up
// with checkpoints, checkpoint, caught_up{position}, live with checkpoints).
// Subscribing from position P is exclusive.
//
// Filtered catch-up reproduces KurrentDB issues #4970/#4990 on purpose: when
// the catch-up reaches the end of the log, its final checkpoint (and the
// caught_up position) is the writer's end offset, the position at which the
// NEXT event will be written. The next append lands exactly at that
// position, so a consumer that resumes "after the checkpoint" would skip it.
// Consumers must treat a checkpoint as exclusive (everything strictly before
// it was considered) and resume from a real event position.
func (s *Store) subscribeAll(snd *sender, ro *readOptions) error {
	if err := s.acquireSubscription(); err != nil {
		return err
	}
	defer s.releaseSubscription()
	sub := &allSubscription{s: s, snd: snd, ro: ro}
	w, err := sub.register()
	if err != nil {
		return err
	}
	if sub.hasC {
		sub.cp, sub.hasCp = sub.c, true
	}
	if err := snd.confirmation(uuid.NewString()); err != nil {
		return err
	}
	page := make([]pageItem, 0, readPageSize)
	for {
		if err := s.ended(snd, w); err != nil {
			return err
		}
		p, err := sub.readPage(page[:0])
		if err != nil {
			return err
		}
		page = p.items
		if ro.filter == nil || sub.live {
			err = sub.sendPlain(page)
		} else {
			err = sub.sendCatchUpPage(page, p.atEnd, p.startAt)
		}
		if err != nil {
			return err
		}
		if !p.atEnd {
			continue
		}
		if !sub.live {
			sub.live = true
			if err := sub.goLive(p.end); err != nil {
				return err
			}
		}
		if err := s.wait(snd, w, p.notify); err != nil {
			return err
		}
	}
}

// register resolves the subscription's start under the read lock and
// returns what it waits on.
func (sub *allSubscription) register() (subscriptionWatch, error) {
	s := sub.s
	s.mu.RLock()
	defer s.mu.RUnlock()
	s.runUnderReadLock()
	n := len(s.recs)
	sub.regIdx = n
	switch x := sub.ro.all.GetAllOption().(type) {
	case *streams.ReadReq_Options_AllOptions_Start:
		sub.cursor = 0
	case *streams.ReadReq_Options_AllOptions_End:
		sub.startAtEnd(n)
	case *streams.ReadReq_Options_AllOptions_Position:
		p := x.Position.GetCommitPosition()
		if p == math.MaxUint64 {
			sub.startAtEnd(n)
		} else {
			sub.c, sub.hasC = p, true
			sub.cursor = s.indexAtOrAfter(p + 1)
		}
	default:
		return subscriptionWatch{}, rpcInvalid("'allOption' is a required argument")
	}
	return s.watch(), nil
}

// startAtEnd starts the subscription after the last of n records. Callers
// hold mu.
func (sub *allSubscription) startAtEnd(n int) {
	sub.cursor = n
	if n > 0 {
		sub.c, sub.hasC = sub.s.recs[n-1].pos, true
	}
}

// readPage reads the next page of $all. Unfiltered and live pages hold up
// to readPageSize records. A filtered catch-up page stops after
// filteredPageMatches matching events or after the search window of
// considered records. A live filtered page also holds every non-matching
// record (marked skip), because live checkpoints count every committed
// record. Filters are matched after the read lock is released; a filter
// that outlasts its budget ends the subscription.
func (sub *allSubscription) readPage(page []pageItem) (allPage, error) {
	start := sub.cursor
	p := sub.copyPage(page)
	f := sub.ro.filter
	if f == nil {
		return p, nil
	}
	limit := math.MaxInt
	if !sub.live {
		limit = filteredPageMatches
	}
	var (
		used int
		err  error
	)
	p.items, used, err = sub.s.filterPage(f, page, sub.cands.items, limit, sub.live)
	if err != nil {
		return p, err
	}
	if !sub.live && len(p.items) >= limit {
		// The page is full: the next one resumes right after its last
		// match, as if the scan had stopped there.
		sub.cursor = sub.cands.next[used-1]
		sub.scanned = sub.cursor - start
		p.atEnd = sub.cursor >= p.logLen
	}
	return p, nil
}

// copyPage copies the next page under the read lock: into page when
// unfiltered, else into sub.cands for readPage to filter.
func (sub *allSubscription) copyPage(page []pageItem) allPage {
	s, ro := sub.s, sub.ro
	s.mu.RLock()
	defer s.mu.RUnlock()
	s.runUnderReadLock()
	n := len(s.recs)
	p := allPage{notify: s.notify, end: s.end, startAt: s.end, logLen: n}
	if sub.cursor < n {
		p.startAt = s.recs[sub.cursor].pos
	}
	filtered := ro.filter != nil
	limit, size := maxScanPerPage, readPageSize
	if filtered && !sub.live {
		limit, size = min(int(ro.window), maxScanPerPage), maxScanPerPage
	}
	c := &sub.cands
	c.items, c.next = c.items[:0], c.next[:0]
	scanned := 0
	for sub.cursor < n && scanned < limit && len(page)+len(c.items) < size {
		r := s.recs[sub.cursor]
		sub.cursor++
		scanned++
		eligible := (!sub.hasC || r.pos > sub.c) && visibleInAll(r)
		switch {
		case eligible && filtered:
			c.items = append(c.items, s.item(r, ro.resolve))
			c.next = append(c.next, sub.cursor)
		case eligible:
			page = append(page, s.item(r, ro.resolve))
		case filtered && sub.live:
			c.items = append(c.items, pageItem{ev: r, skip: true})
			c.next = append(c.next, sub.cursor)
		}
	}
	sub.scanned = scanned
	p.items, p.atEnd = page, sub.cursor >= n
	return p
}

// sendPlain sends an unfiltered page, or a live filtered page with its
// checkpoints: the live counter counts every committed record, and when it
// reaches the interval a checkpoint at that record's position follows it.
func (sub *allSubscription) sendPlain(page []pageItem) error {
	filtered := sub.ro.filter != nil
	for _, it := range page {
		o := it.orig()
		if !it.skip {
			if err := sub.snd.event(it); err != nil {
				return err
			}
			sub.c, sub.hasC = o.pos, true
		}
		if filtered {
			sub.counter++
			if sub.counter >= sub.ro.interval {
				sub.counter = 0
				if err := sub.checkpoint(o.pos); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// sendCatchUpPage sends a filtered catch-up page and, when the considered
// records reach the checkpoint interval, a checkpoint. As on a real server,
// the catch-up checkpoint is the position of the last event sent, moved up
// to the start of the page just read when that lies beyond it; so
// checkpoints lag by up to one page and may equal a delivered event's
// position, but never go back behind one.
func (sub *allSubscription) sendCatchUpPage(page []pageItem, atEnd bool, startAt uint64) error {
	for _, it := range page {
		if err := sub.snd.event(it); err != nil {
			return err
		}
		sub.c, sub.hasC = it.orig().pos, true
		sub.cp, sub.hasCp = sub.c, true
	}
	if atEnd {
		return nil // goLive sends the final checkpoint
	}
	if sub.scanned > 0 && (!sub.hasCp || startAt > sub.cp) {
		sub.cp, sub.hasCp = startAt, true
	}
	sub.counter += uint64(sub.scanned)
	if sub.counter >= sub.ro.interval {
		sub.counter %= sub.ro.interval
		if sub.hasCp {
			return sub.checkpoint(sub.cp)
		}
	}
	return nil
}

// checkpoint sends a checkpoint unless it would not move past the last one.
func (sub *allSubscription) checkpoint(pos uint64) error {
	if sub.sentCp && pos <= sub.lastCp {
		return nil
	}
	sub.sentCp, sub.lastCp = true, pos
	return sub.snd.checkpoint(pos)
}

// goLive ends the catch-up. A filtered subscription always sends a
// checkpoint first, at the writer's end offset (the #4970 quirk, see
// subscribeAll), then caught_up at the same position; an unfiltered one
// sends caught_up at the last delivered position (or the start).
func (sub *allSubscription) goLive(end uint64) error {
	if sub.ro.filter == nil {
		return sub.snd.caughtUpPosition(sub.c, sub.hasC)
	}
	final := end
	if sub.hasC && sub.c > final {
		final = sub.c
	}
	sub.sentCp, sub.lastCp = true, final
	if err := sub.snd.checkpoint(final); err != nil {
		return err
	}
	if err := sub.snd.caughtUpPosition(final, true); err != nil {
		return err
	}
	// The live counter started when the subscription was registered and has
	// counted every record committed since.
	sub.counter = 0
	if sub.cursor > sub.regIdx {
		sub.counter = uint64(sub.cursor-sub.regIdx) % sub.ro.interval
	}
	return nil
}
