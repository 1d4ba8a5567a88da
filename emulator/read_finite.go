package emulator

import (
	"math"
	"sort"

	"github.com/kurrent-io/KurrentDB-Client-Go/protos/kurrentdb/protocols/v1/streams"
)

// readStream serves a finite stream read. With compatibility ≥ 1 (which the
// Go client never sets) it also sends, as a real server does, the first
// stream position when a forward read's first page is empty and starts
// elsewhere, and the last stream position at the end.
func (s *Store) readStream(snd *sender, ro *readOptions) error {
	name := string(ro.stream.GetStreamIdentifier().GetStreamName())
	var from int64
	fwdEnd := false
	switch x := ro.stream.GetRevisionOption().(type) {
	case *streams.ReadReq_Options_StreamOptions_Start:
		from = 0
	case *streams.ReadReq_Options_StreamOptions_End:
		from = math.MaxInt64
		fwdEnd = !ro.backwards
	case *streams.ReadReq_Options_StreamOptions_Revision:
		from = int64(min(x.Revision, math.MaxInt64))
	default:
		return rpcInvalid("'revisionOption' is a required argument")
	}
	start := from
	remaining := ro.count
	page := make([]pageItem, 0, min(remaining, readPageSize))
	first := true
	var last int64
	for remaining > 0 {
		var (
			done     bool
			stop     error
			notFound bool
			atEnd    bool
		)
		page = page[:0]
		func() {
			s.mu.RLock()
			defer s.mu.RUnlock()
			s.runUnderReadLock()
			st := s.streams[name]
			if first {
				switch {
				case st.tombstoned() || baseOfMeta(s, name).tombstoned():
					stop = rpcStreamDeleted(name)
					return
				case st.last() < 0 || st.softDeleted():
					notFound = true
					return
				case fwdEnd:
					atEnd = true
					return
				}
			}
			last = st.last()
			page, from, done = s.copyStreamPage(st, ro, page, from, last, remaining)
		}()
		switch {
		case stop != nil:
			return stop
		case notFound:
			return snd.streamNotFound(name)
		case atEnd:
			return nil
		}
		if first && ro.compat >= 1 && !ro.backwards && len(page) == 0 {
			if next := min(from, last+1); next != start {
				if err := snd.srv.Send(&streams.ReadResp{Content: &streams.ReadResp_FirstStreamPosition{FirstStreamPosition: uint64(next)}}); err != nil {
					return err
				}
			}
		}
		first = false
		if err := snd.events(page); err != nil {
			return err
		}
		remaining -= uint64(len(page))
		if done {
			break
		}
	}
	if ro.compat >= 1 && !first {
		return snd.srv.Send(&streams.ReadResp{Content: &streams.ReadResp_LastStreamPosition{LastStreamPosition: uint64(last)}})
	}
	return nil
}

// copyStreamPage copies the next page of a finite stream read, from event
// number from (whose last event number is last), honouring $maxCount,
// $maxAge and $tb. It returns the page, where the next page starts and
// whether the read is done. Callers hold mu.
func (s *Store) copyStreamPage(st *stream, ro *readOptions, page []pageItem, from, last int64, remaining uint64) ([]pageItem, int64, bool) {
	minEv := st.minEvent(last)
	expired := st.expiredBefore(ticksOf(s.now()))
	if !ro.backwards {
		n := max(from, minEv)
		for scanned := 0; n <= last && len(page) < cap(page) && uint64(len(page)) < remaining && scanned < maxScanPerPage; n++ {
			scanned++
			if r := st.events[n]; r.created >= expired {
				page = append(page, s.item(r, ro.resolve))
			}
		}
		return page, n, n > last
	}
	n := min(from, last)
	for scanned := 0; n >= minEv && len(page) < cap(page) && uint64(len(page)) < remaining && scanned < maxScanPerPage; n-- {
		scanned++
		if r := st.events[n]; r.created >= expired {
			page = append(page, s.item(r, ro.resolve))
		}
	}
	return page, n, n < minEv
}

// allStart resolves the start of a finite $all read to a log index: the first
// record to examine going forwards, or the last going backwards. Callers
// hold mu.
func (s *Store) allStart(all *streams.ReadReq_Options_AllOptions, backwards bool) (int, error) {
	n := len(s.recs)
	switch x := all.GetAllOption().(type) {
	case *streams.ReadReq_Options_AllOptions_Start:
		if backwards {
			return -1, nil
		}
		return 0, nil
	case *streams.ReadReq_Options_AllOptions_End:
		if backwards {
			return n - 1, nil
		}
		return n, nil
	case *streams.ReadReq_Options_AllOptions_Position:
		p := x.Position.GetCommitPosition()
		if p == math.MaxUint64 {
			if backwards {
				return n - 1, nil
			}
			return n, nil
		}
		i := s.indexAtOrAfter(p) // forwards: inclusive
		if backwards {
			return i - 1, nil // backwards: exclusive
		}
		return i, nil
	default:
		return 0, rpcInvalid("'allOption' is a required argument")
	}
}

// indexAtOrAfter is the index of the first record with pos >= p. Callers
// hold mu.
func (s *Store) indexAtOrAfter(p uint64) int {
	return sort.Search(len(s.recs), func(i int) bool { return s.recs[i].pos >= p })
}

// readAll serves a finite $all read, filtered or not. Every $all read applies
// the default $all filter; filtered reads emit no checkpoints.
func (s *Store) readAll(snd *sender, ro *readOptions) error {
	remaining := ro.count
	page := make([]pageItem, 0, min(remaining, readPageSize))
	var c allCandidates
	idx, err := func() (int, error) {
		s.mu.RLock()
		defer s.mu.RUnlock()
		s.runUnderReadLock()
		return s.allStart(ro.all, ro.backwards)
	}()
	if err != nil {
		return err
	}
	for remaining > 0 {
		page = page[:0]
		want := min(uint64(cap(page)), remaining)
		var n int
		if ro.filter == nil {
			page, idx, n = s.copyAllPage(ro, page, idx, int(want))
		} else {
			// Copy up to a scan's worth of visible records, then filter
			// them with the lock released; resume after the last match kept.
			c.items, c.next = c.items[:0], c.next[:0]
			c.items, c.next, idx, n = s.copyAllCandidates(ro, c.items, c.next, idx)
			var used int
			page, used, err = s.filterPage(ro.filter, page, c.items, int(want), false)
			if err != nil {
				return err
			}
			if len(page) >= int(want) {
				idx = c.next[used-1] // full: resume right after the last match
			}
		}
		done := idx < 0 || idx >= n
		if err := snd.events(page); err != nil {
			return err
		}
		remaining -= uint64(len(page))
		if done {
			break
		}
	}
	return nil
}

// allCandidates are records of $all copied under the read lock to be
// filtered after it is released: items[i] and the log index to resume at
// after it, next[i].
type allCandidates struct {
	items []pageItem
	next  []int
}

// copyAllPage copies up to want visible records of an unfiltered finite
// $all read from log index idx under the read lock. It returns the page,
// the index to resume at and the log length.
func (s *Store) copyAllPage(ro *readOptions, page []pageItem, idx, want int) ([]pageItem, int, int) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	s.runUnderReadLock()
	n := len(s.recs)
	for scanned := 0; scanned < maxScanPerPage && len(page) < want && idx >= 0 && idx < n; scanned++ {
		r := s.recs[idx]
		idx = stepIndex(idx, ro.backwards)
		if visibleInAll(r) {
			page = append(page, s.item(r, ro.resolve))
		}
	}
	return page, idx, n
}

// copyAllCandidates copies the visible records among the next
// maxScanPerPage of a filtered finite $all read from log index idx under
// the read lock. It returns them, the index to resume at after each, the
// index after the scan and the log length.
func (s *Store) copyAllCandidates(ro *readOptions, items []pageItem, next []int, idx int) ([]pageItem, []int, int, int) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	s.runUnderReadLock()
	n := len(s.recs)
	for scanned := 0; scanned < maxScanPerPage && idx >= 0 && idx < n; scanned++ {
		r := s.recs[idx]
		idx = stepIndex(idx, ro.backwards)
		if visibleInAll(r) {
			items = append(items, s.item(r, ro.resolve))
			next = append(next, idx)
		}
	}
	return items, next, idx, n
}

// stepIndex moves a log index one record on in the read's direction.
func stepIndex(idx int, backwards bool) int {
	if backwards {
		return idx - 1
	}
	return idx + 1
}
