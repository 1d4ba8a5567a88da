package emulator

import (
	"context"
	"strconv"
	"strings"

	"github.com/kurrent-io/KurrentDB-Client-Go/protos/kurrentdb/protocols/v1/streams"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
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
