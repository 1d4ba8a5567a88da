package emulator

import (
	"context"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/kurrent-io/KurrentDB-Client-Go/protos/kurrentdb/protocols/v1/shared"
	"github.com/kurrent-io/KurrentDB-Client-Go/protos/kurrentdb/protocols/v1/streams"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Read serves Streams.Read: finite reads of a stream or of $all, and
// subscriptions to a stream or to $all (optionally filtered). See the
// protocol spec, section 4, for the sequencing this reproduces.
func (s *streamsServer) Read(req *streams.ReadReq, srv streams.Streams_ReadServer) error {
	return s.store.serveRead(req, srv)
}

// readSink is the part of the Read server stream the store uses.
type readSink interface {
	Send(*streams.ReadResp) error
	SendMsg(any) error
	Context() context.Context
}

// Read paging: the read lock is held only to copy a page of record
// pointers; events are encoded and sent after it is released.
const (
	// readPageSize is the number of events copied per lock hold.
	readPageSize = 256
	// maxScanPerPage bounds the records examined per lock hold by filtered
	// reads, so a selective filter over a long log does not starve writers.
	maxScanPerPage = 4096
	// defaultSearchWindow is the window of a filter with count{} (no max).
	defaultSearchWindow = 32
	// filteredPageMatches is the number of matching events that ends a
	// filtered catch-up page, as the real server's page size.
	filteredPageMatches = 32
)

// readOptions is a validated ReadReq.
type readOptions struct {
	stringIDs bool
	backwards bool
	resolve   bool
	count     uint64
	stream    *streams.ReadReq_Options_StreamOptions // nil for $all
	all       *streams.ReadReq_Options_AllOptions
	filter    *eventFilter
	compat    uint32 // control_option.compatibility: ≥ 1 adds stream positions to stream reads
	window    uint32 // max search window of a filter
	interval  uint64 // checkpoint interval of a filtered subscription
}

// serveRead validates a ReadReq and dispatches it.
func (s *Store) serveRead(req *streams.ReadReq, srv readSink) error {
	ro, subscription, err := readOptionsOf(req.GetOptions())
	if err != nil {
		return err
	}
	if ro.filter != nil {
		ro.filter.budget = s.opts.FilterBudget
	}
	snd := newSender(srv, ro.stringIDs, s.now)
	switch {
	case ro.stream != nil && !subscription:
		return s.readStream(snd, &ro)
	case ro.stream != nil:
		return s.subscribeStream(snd, &ro)
	case !subscription:
		return s.readAll(snd, &ro)
	default:
		return s.subscribeAll(snd, &ro)
	}
}

// readOptionsOf validates the options of a ReadReq, with the errors
// KurrentDB gives, and returns them decoded, and whether they ask for a
// subscription rather than a finite read.
func readOptionsOf(o *streams.ReadReq_Options) (ro readOptions, subscription bool, err error) {
	if o == nil {
		return ro, false, rpcInvalid("'options' is a required argument")
	}
	// Switch on the oneof wrapper types: the official client sends wrappers
	// whose inner message is nil, which arrive as present, empty messages.
	switch o.GetUuidOption().GetContent().(type) {
	case *streams.ReadReq_Options_UUIDOption_Structured:
	case *streams.ReadReq_Options_UUIDOption_String_:
		ro.stringIDs = true
	default:
		return ro, false, rpcInvalid("'uuidOption' is a required argument")
	}
	ro.resolve = o.GetResolveLinks()
	ro.compat = o.GetControlOption().GetCompatibility()

	streamCase, countCase, filterCase := "None", "None", "None"
	switch x := o.GetStreamOption().(type) {
	case *streams.ReadReq_Options_Stream:
		streamCase = "Stream"
		ro.stream = x.Stream
	case *streams.ReadReq_Options_All:
		streamCase = "All"
		ro.all = x.All
	}
	switch x := o.GetCountOption().(type) {
	case *streams.ReadReq_Options_Count:
		countCase = "Count"
		ro.count = x.Count
	case *streams.ReadReq_Options_Subscription:
		countCase = "Subscription"
		subscription = true
	}
	var filterOpts *streams.ReadReq_Options_FilterOptions
	switch x := o.GetFilterOption().(type) {
	case *streams.ReadReq_Options_Filter:
		filterCase = "Filter"
		filterOpts = x.Filter
		if filterOpts == nil {
			filterOpts = &streams.ReadReq_Options_FilterOptions{}
		}
	case *streams.ReadReq_Options_NoFilter:
		filterCase = "NoFilter"
	}
	var dirCase string
	switch o.GetReadDirection() {
	case streams.ReadReq_Options_Forwards:
		dirCase = "Forwards"
	case streams.ReadReq_Options_Backwards:
		dirCase = "Backwards"
		ro.backwards = true
	default:
		dirCase = strconv.Itoa(int(o.GetReadDirection()))
	}
	dirOK := dirCase == "Forwards" || dirCase == "Backwards"
	streamOK := streamCase == "Stream" && filterCase == "NoFilter" ||
		streamCase == "All" && (filterCase == "NoFilter" || filterCase == "Filter")
	valid := streamOK && (countCase == "Count" && dirOK || countCase == "Subscription" && dirCase == "Forwards")
	if !valid {
		return ro, false, rpcInvalid("The combination of (%s, %s, %s, %s) is invalid.", streamCase, countCase, dirCase, filterCase)
	}
	if filterOpts != nil {
		if err := ro.parseFilter(filterOpts, subscription); err != nil {
			return ro, false, err
		}
	}
	if ro.stream != nil && ro.stream.GetStreamIdentifier() == nil {
		return ro, false, rpcInvalid("'streamIdentifier' is a required argument")
	}
	return ro, subscription, nil
}

// parseFilter validates the filter options of a $all read or subscription.
func (ro *readOptions) parseFilter(fo *streams.ReadReq_Options_FilterOptions, subscription bool) error {
	var expr *streams.ReadReq_Options_FilterOptions_Expression
	byStream := false
	switch x := fo.GetFilter().(type) {
	case *streams.ReadReq_Options_FilterOptions_StreamIdentifier:
		byStream, expr = true, x.StreamIdentifier
	case *streams.ReadReq_Options_FilterOptions_EventType:
		expr = x.EventType
	default:
		return rpcInvalid("'filter' needs a stream_identifier or event_type expression")
	}
	f, err := newEventFilter(byStream, expr.GetRegex(), expr.GetPrefix())
	if err != nil {
		return rpcInvalid("%v", err)
	}
	ro.filter = f
	ro.window = defaultSearchWindow
	if w, ok := fo.GetWindow().(*streams.ReadReq_Options_FilterOptions_Max); ok && w.Max > 0 {
		ro.window = w.Max
	}
	if subscription {
		m := fo.GetCheckpointIntervalMultiplier()
		if m == 0 {
			// The real server throws ArgumentOutOfRangeException, which the
			// gRPC host reports as Unknown.
			return status.Error(codes.Unknown, "Exception was thrown by handler. ArgumentOutOfRangeException: "+
				"Specified argument was out of the range of valid values. (Parameter 'checkpointIntervalMultiplier')")
		}
		ro.interval = uint64(m) * uint64(ro.window)
	}
	return nil
}

// pageItem is one event to send: ev (nil for a link whose target is
// missing) and, when a link was resolved, the link record.
type pageItem struct {
	ev, link *record
	// skip marks a record a live filtered subscription considered but does
	// not send (ev is that record).
	skip bool
}

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
			if used < len(c.items) {
				idx = c.next[used-1]
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

// item makes the page item of a record, resolving a link if asked. Callers
// hold mu.
func (s *Store) item(r *record, resolve bool) pageItem {
	if !resolve || r.typ != linkEventType {
		return pageItem{ev: r}
	}
	return pageItem{ev: s.linkTarget(r), link: r}
}

// linkTarget resolves a link ("<number>@<stream>") to its event, or nil when
// the target is missing, deleted or no longer visible. Callers hold mu.
func (s *Store) linkTarget(link *record) *record {
	data := string(link.data)
	at := strings.IndexByte(data, '@')
	if at <= 0 {
		return nil
	}
	n, err := strconv.ParseInt(data[:at], 10, 64)
	if err != nil || n < 0 {
		return nil
	}
	st := s.streams[data[at+1:]]
	if st == nil || st.tombstoned() || st.softDeleted() {
		return nil
	}
	last := st.last()
	if n > last || n < st.minEvent(last) {
		return nil
	}
	r := st.events[n]
	if r.created < st.expiredBefore(ticksOf(s.now())) {
		return nil
	}
	return r
}

// sender encodes and sends ReadResp messages. Events are encoded by hand
// (see read_encode.go) into a buffer of their exact size. Nothing passed to
// SendMsg is touched afterwards: gRPC's codec keeps a small message's bytes
// (without copying them) until the transport has written them out, after
// SendMsg returns, and tracing or a stats handler may keep the message
// itself. So each event gets its own buffer and its own encodedResp.
type sender struct {
	srv       readSink
	now       func() time.Time
	stringIDs bool
}

// Reads send the three system metadata keys a real server sends.
const (
	mdType        = "type"
	mdCreated     = "created"
	mdContentType = "content-type"
	contentJSON   = "application/json"
	contentBinary = "application/octet-stream"
)

func newSender(srv readSink, stringIDs bool, now func() time.Time) *sender {
	return &sender{srv: srv, stringIDs: stringIDs, now: now}
}

// event sends one event (with its link, if resolved).
func (snd *sender) event(it pageItem) error {
	n := eventRespSize(it, snd.stringIDs)
	b := appendEventResp(make([]byte, 0, n), it, snd.stringIDs)
	if len(b) != n {
		// A size that disagrees with the bytes would make the client fail
		// with "cannot parse invalid wire-format data"; never send it.
		return status.Errorf(codes.Internal, "encoding event at position %d: %d bytes, size says %d", it.orig().pos, len(b), n)
	}
	return snd.srv.SendMsg(&encodedResp{b: b})
}

// events sends the events of page in order.
func (snd *sender) events(page []pageItem) error {
	for _, it := range page {
		if err := snd.event(it); err != nil {
			return err
		}
	}
	return nil
}

func (snd *sender) streamNotFound(name string) error {
	return snd.srv.Send(&streams.ReadResp{Content: &streams.ReadResp_StreamNotFound_{
		StreamNotFound: &streams.ReadResp_StreamNotFound{StreamIdentifier: &shared.StreamIdentifier{StreamName: []byte(name)}},
	}})
}

func (snd *sender) confirmation(id string) error {
	return snd.srv.Send(&streams.ReadResp{Content: &streams.ReadResp_Confirmation{
		Confirmation: &streams.ReadResp_SubscriptionConfirmation{SubscriptionId: id},
	}})
}

func (snd *sender) timestamp() *timestamppb.Timestamp {
	return timestamppb.New(snd.now())
}

func (snd *sender) checkpoint(pos uint64) error {
	return snd.srv.Send(&streams.ReadResp{Content: &streams.ReadResp_Checkpoint_{
		Checkpoint: &streams.ReadResp_Checkpoint{CommitPosition: pos, PreparePosition: pos, Timestamp: snd.timestamp()},
	}})
}

// caughtUpRevision sends caught_up for a stream subscription; rev < 0 omits
// the revision.
func (snd *sender) caughtUpRevision(rev int64) error {
	cu := &streams.ReadResp_CaughtUp{Timestamp: snd.timestamp()}
	if rev >= 0 {
		cu.StreamRevision = &rev
	}
	return snd.srv.Send(&streams.ReadResp{Content: &streams.ReadResp_CaughtUp_{CaughtUp: cu}})
}

// caughtUpPosition sends caught_up for a $all subscription; has false omits
// the position.
func (snd *sender) caughtUpPosition(pos uint64, has bool) error {
	cu := &streams.ReadResp_CaughtUp{Timestamp: snd.timestamp()}
	if has {
		cu.Position = &streams.ReadResp_Position{CommitPosition: pos, PreparePosition: pos}
	}
	return snd.srv.Send(&streams.ReadResp{Content: &streams.ReadResp_CaughtUp_{CaughtUp: cu}})
}
