package emulator

import (
	"math"

	"github.com/google/uuid"
	"github.com/kurrent-io/KurrentDB-Client-Go/protos/kurrentdb/protocols/v1/streams"
)

// subscribeStream serves a subscription to one stream: confirmation,
// catch-up (honouring $maxCount, $maxAge and $tb), caught_up{revision}, then
// live events. Subscribing from revision r is exclusive. A tombstone is
// delivered and then ends the subscription with stream-deleted.
func (s *Store) subscribeStream(snd *sender, ro *readOptions) error {
	if err := s.acquireSubscription(); err != nil {
		return err
	}
	defer s.releaseSubscription()
	name := string(ro.stream.GetStreamIdentifier().GetStreamName())
	registeredLast, w, err := s.registerStreamSubscription(name)
	if err != nil {
		return err
	}

	var c int64
	switch x := ro.stream.GetRevisionOption().(type) {
	case *streams.ReadReq_Options_StreamOptions_Start:
		c = -1
	case *streams.ReadReq_Options_StreamOptions_End:
		c = registeredLast
	case *streams.ReadReq_Options_StreamOptions_Revision:
		c = int64(min(x.Revision, math.MaxInt64-1))
	default:
		return rpcInvalid("'revisionOption' is a required argument")
	}
	if err := snd.confirmation(uuid.NewString()); err != nil {
		return err
	}
	cursor := c // highest event number examined
	lastSent := c
	live := false
	page := make([]pageItem, 0, readPageSize)
	for {
		if err := s.ended(snd, w); err != nil {
			return err
		}
		var (
			notify <-chan struct{}
			tomb   *record
			last   int64
		)
		page, notify, tomb, cursor, last = s.copyStreamSubscriptionPage(name, ro, page[:0], cursor, live)
		for _, it := range page {
			if err := snd.event(it); err != nil {
				return err
			}
			lastSent = it.orig().number
		}
		if tomb != nil {
			if err := snd.event(pageItem{ev: tomb}); err != nil {
				return err
			}
			return rpcStreamDeleted(name)
		}
		if cursor < last {
			continue // more to read
		}
		if !live {
			live = true
			if err := snd.caughtUpRevision(lastSent); err != nil {
				return err
			}
		}
		if err := s.wait(snd, w, notify); err != nil {
			return err
		}
	}
}

// registerStreamSubscription checks that a stream may be subscribed to and
// returns its last event number and what the subscription waits on.
func (s *Store) registerStreamSubscription(name string) (int64, subscriptionWatch, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	s.runUnderReadLock()
	st := s.streams[name]
	if st.tombstoned() || baseOfMeta(s, name).tombstoned() {
		return 0, subscriptionWatch{}, rpcStreamDeleted(name)
	}
	return st.last(), s.watch(), nil
}

// copyStreamSubscriptionPage copies the next page of a stream subscription
// after event number cursor under the read lock. During catch-up it honours
// $maxCount, $maxAge and $tb. It returns the page, the broadcast channel to
// wait on, the stream's tombstone once the cursor reached it, the new
// cursor and the stream's last event number.
func (s *Store) copyStreamSubscriptionPage(name string, ro *readOptions, page []pageItem, cursor int64, live bool) (
	[]pageItem, <-chan struct{}, *record, int64, int64) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	s.runUnderReadLock()
	st := s.streams[name]
	last := st.last()
	minEv, expired := int64(0), int64(math.MinInt64)
	if !live && st != nil {
		minEv, expired = st.minEvent(last), st.expiredBefore(ticksOf(s.now()))
	}
	if !live && minEv-1 > cursor {
		cursor = min(minEv-1, last) // skip what truncation hides
	}
	for scanned := 0; cursor < last && len(page) < cap(page) && scanned < maxScanPerPage; scanned++ {
		cursor++
		r := st.events[cursor]
		if live || cursor >= minEv && r.created >= expired {
			page = append(page, s.item(r, ro.resolve))
		}
	}
	var tomb *record
	if cursor >= last && st != nil && st.tomb != nil {
		tomb = st.tomb
	}
	return page, s.notify, tomb, cursor, last
}
