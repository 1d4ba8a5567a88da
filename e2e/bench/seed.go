package bench

import (
	"context"
	"fmt"
	"sync"

	"github.com/kurrent-io/KurrentDB-Client-Go/kurrentdb"
)

// SeedResult is what seeding wrote.
type SeedResult struct {
	Counts  Counts
	Handled Counts // the events of the topics given to Seed
	// Head is the commit position of the log's last event, a dog's event.
	Head uint64
}

// Seed appends the workload's log through client with appenders concurrent appenders, each
// append to a new stream, shaped as eventsourcing-kurrentdb writes events (type = topic,
// content type application/octet-stream, empty metadata). The last append is made alone, after
// all others, so its position is the head. The events of topics are counted apart.
func Seed(ctx context.Context, client *kurrentdb.Client, w Workload, appenders int, topics map[string]bool) (SeedResult, error) {
	if appenders < 1 {
		return SeedResult{}, fmt.Errorf("appenders: %d; want at least 1", appenders)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	work := make(chan Append, appenders*2)
	errs := make(chan error, appenders)
	var wg sync.WaitGroup
	for range appenders {
		wg.Go(func() {
			for a := range work {
				if _, err := appendStream(ctx, client, a); err != nil {
					errs <- err
					cancel()
					return
				}
			}
		})
	}
	var res SeedResult
	var last Append
	first := true
	w.Appends(func(a Append) bool {
		if !first {
			select {
			case work <- last:
			case <-ctx.Done():
				return false
			}
		}
		first = false
		last = a
		for _, e := range a.Events {
			res.Counts.Add(e.Type)
			if topics[e.Type] {
				res.Handled.Add(e.Type)
			}
		}
		return true
	})
	close(work)
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return res, err
	}
	if err := ctx.Err(); err != nil {
		return res, err
	}
	head, err := appendStream(ctx, client, last)
	if err != nil {
		return res, err
	}
	res.Head = head
	return res, nil
}

// appendStream appends a to its new stream and returns the commit position of its last event.
func appendStream(ctx context.Context, client *kurrentdb.Client, a Append) (uint64, error) {
	events := make([]kurrentdb.EventData, len(a.Events))
	for i, e := range a.Events {
		events[i] = kurrentdb.EventData{EventID: e.ID, EventType: e.Type, ContentType: kurrentdb.ContentTypeBinary, Data: e.Data, Metadata: []byte{}}
	}
	r, err := client.AppendToStream(ctx, a.Stream, kurrentdb.AppendToStreamOptions{StreamState: kurrentdb.NoStream{}}, events...)
	if err != nil {
		return 0, fmt.Errorf("append %d events to stream %s: %w", len(events), a.Stream, err)
	}
	return r.CommitPosition, nil
}
