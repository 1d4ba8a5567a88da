package emulator

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/kurrent-io/KurrentDB-Client-Go/kurrentdb"
	"github.com/kurrent-io/KurrentDB-Client-Go/protos/kurrentdb/protocols/v1/streams"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/protoadapt"
)

// benchPayload is a ~200-byte JSON event body.
var benchPayload = []byte(`{"orderId":"6f1c2a4e-9b7d-4c1e-8f3a-2d5b7c9e1f00","customer":"c-4711","lines":[{"sku":"SKU-1","qty":2,"price":"19.99"},{"sku":"SKU-2","qty":1,"price":"5.00"}],"total":"44.98","currency":"EUR","note":"bench"}`)

// fillBench appends n ~200-byte JSON events, in batches, over 100 streams.
func fillBench(b *testing.B, s *Store, n int) {
	b.Helper()
	const batch = 1000
	for done := 0; done < n; {
		k := min(batch, n-done)
		evs := make([]ProposedEvent, k)
		for i := range evs {
			evs[i] = ProposedEvent{ID: uuid.New(), Type: "OrderPlaced", IsJSON: true, Data: benchPayload, Metadata: []byte{}}
		}
		if _, err := s.Append(StreamAppend{Stream: fmt.Sprintf("order-%d", done/batch%100), Expected: Expected{Kind: ExpectAny}, Events: evs}); err != nil {
			b.Fatal(err)
		}
		done += k
	}
}

// filledReadFixture starts a read fixture whose store holds the given number of events,
// and returns it with the number of records in its log.
func filledReadFixture(b *testing.B, events int) (*readFixture, int) {
	b.Helper()
	f := newReadFixture(b, Options{})
	t0 := time.Now()
	fillBench(b, f.store, events)
	b.Logf("filled %d events in %v", events, time.Since(t0))
	_, total := f.store.Head()
	return f, total
}

// memProbe measures allocations and the peak heap over a run.
type memProbe struct {
	start runtime.MemStats
	cpu0  time.Duration
	base  uint64
	peak  atomic.Uint64
	stop  chan struct{}
	wg    sync.WaitGroup
}

func startMemProbe() *memProbe {
	runtime.GC()
	p := &memProbe{stop: make(chan struct{})}
	runtime.ReadMemStats(&p.start)
	p.base = p.start.HeapInuse
	p.cpu0 = cpuTime()
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		var ms runtime.MemStats
		for {
			select {
			case <-p.stop:
				return
			case <-t.C:
				runtime.ReadMemStats(&ms)
				if ms.HeapInuse > p.peak.Load() {
					p.peak.Store(ms.HeapInuse)
				}
			}
		}
	}()
	return p
}

// report stops the probe and reports per-event figures for n events.
func (p *memProbe) report(b *testing.B, n int) {
	close(p.stop)
	p.wg.Wait()
	var end runtime.MemStats
	runtime.ReadMemStats(&end)
	runtime.GC()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "events/s")
	// CPU time of the whole process (server and client) per event: the
	// machine is shared, so this is steadier than wall-clock throughput.
	b.ReportMetric(float64(cpuTime()-p.cpu0)/float64(time.Microsecond)/float64(n), "cpu-µs/event")
	b.ReportMetric(float64(end.Mallocs-p.start.Mallocs)/float64(n), "allocs/event")
	b.ReportMetric(float64(end.TotalAlloc-p.start.TotalAlloc)/float64(n), "B/event")
	peak := p.peak.Load()
	if peak < p.base {
		peak = p.base
	}
	b.ReportMetric(float64(peak-p.base)/(1<<20), "peak-heap-growth-MiB")
	// What the read left behind: the live heap after a collection.
	b.ReportMetric((float64(after.HeapAlloc)-float64(p.start.HeapAlloc))/(1<<20), "retained-MiB")
}

// benchDelivery fills a fixture with events, then times b.N runs of deliver,
// each returning how many events it received; every run must receive
// want(total) of the log's total records. It reports per-event figures.
func benchDelivery(b *testing.B, events int, want func(total int) int, deliver func(ctx context.Context, f *readFixture, total int) int) {
	f, total := filledReadFixture(b, events)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	b.ResetTimer()
	probe := startMemProbe()
	got := 0
	for i := 0; i < b.N; i++ {
		got += deliver(ctx, f, total)
	}
	b.StopTimer()
	if w := want(total) * b.N; got != w {
		b.Fatalf("received %d events, want %d", got, w)
	}
	probe.report(b, got)
}

// wholeLog is the want of benchDelivery for a run that receives every record.
func wholeLog(total int) int { return total }

func benchReadAll(b *testing.B, events int) {
	benchDelivery(b, events, wholeLog, func(ctx context.Context, f *readFixture, total int) int {
		rs, err := f.client.ReadAll(ctx, kurrentdb.ReadAllOptions{From: kurrentdb.Start{}}, uint64(total))
		if err != nil {
			b.Fatal(err)
		}
		defer rs.Close()
		read := 0
		for {
			_, err := rs.Recv()
			if errors.Is(err, io.EOF) {
				return read
			}
			if err != nil {
				b.Fatal(err)
			}
			read++
		}
	})
}

// BenchmarkReadAllForwards reads a 100,000-event $all forwards with the
// official client over loopback gRPC.
func BenchmarkReadAllForwards(b *testing.B) { benchReadAll(b, 100_000) }

// BenchmarkReadAllMillion reads a 1,000,000-event $all: the heap must stay
// flat (peak-heap-growth-MiB) while the whole log streams through.
func BenchmarkReadAllMillion(b *testing.B) { benchReadAll(b, 1_000_000) }

func benchCatchUp(b *testing.B, events int, filter *kurrentdb.SubscriptionFilter) {
	want := wholeLog
	if filter != nil { // the filter passes the benchmark's events, not the seeded system records
		want = func(int) int { return events }
	}
	benchDelivery(b, events, want, func(ctx context.Context, f *readFixture, _ int) int {
		sub, err := f.client.SubscribeToAll(ctx, kurrentdb.SubscribeToAllOptions{From: kurrentdb.Start{}, Filter: filter})
		if err != nil {
			b.Fatal(err)
		}
		defer func() { _ = sub.Close() }()
		got := 0
		for {
			e := sub.Recv()
			if e.SubscriptionDropped != nil {
				b.Fatal(e.SubscriptionDropped.Error)
			}
			if e.EventAppeared != nil {
				got++
			}
			if e.CaughtUp != nil {
				return got
			}
		}
	})
}

// BenchmarkCatchUpAll is a catch-up subscription to $all from the start
// over 100,000 events, to caught_up.
func BenchmarkCatchUpAll(b *testing.B) { benchCatchUp(b, 100_000, nil) }

// BenchmarkCatchUpAllFiltered is the same with an event-type regex filter
// with a lookahead, as Python clients send.
func BenchmarkCatchUpAllFiltered(b *testing.B) {
	benchCatchUp(b, 100_000, &kurrentdb.SubscriptionFilter{Type: kurrentdb.EventFilterType, Regex: `^(?!(\$.+$|.*Snapshot$))`})
}

// cpuTime is the process's user+system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// discardSink is a Read stream that encodes each message as gRPC would and
// drops it: it measures the emulator's own cost per event, without the
// transport and the client.
type discardSink struct {
	ctx   context.Context
	n     int
	bytes int
}

func (d *discardSink) Context() context.Context { return d.ctx }

func (d *discardSink) Send(m *streams.ReadResp) error { return d.SendMsg(m) }

func (d *discardSink) SendMsg(m any) error {
	b, err := proto.Marshal(protoadapt.MessageV2Of(m.(protoadapt.MessageV1)))
	if err != nil {
		return err
	}
	d.n++
	d.bytes += len(b)
	return nil
}

// BenchmarkServeReadAll is the server side of a forward $all read alone:
// paging under the read lock, encoding and the codec's marshal step.
func BenchmarkServeReadAll(b *testing.B) {
	s := stOpen(b, StoreOptions{})
	fillBench(b, s, 100_000)
	_, total := s.Head()
	sink := &discardSink{ctx: context.Background()}
	b.ResetTimer()
	probe := startMemProbe()
	for i := 0; i < b.N; i++ {
		if err := s.serveRead(rdAllReq(uint64(total), nil), sink); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	if sink.n != total*b.N {
		b.Fatalf("sent %d events, want %d", sink.n, total*b.N)
	}
	probe.report(b, sink.n)
}

// BenchmarkReadAllForwardsRawGRPC reads the same 100,000-event $all forwards
// over loopback gRPC with the generated Streams stub instead of the official
// client: every ReadResp is still fully decoded, but the client's per-event
// conversion (metadata map, UUID and time parsing) is left out. Side by side
// with BenchmarkReadAllForwards it shows how much of that figure is the
// client's own cost rather than the emulator's delivery.
func BenchmarkReadAllForwardsRawGRPC(b *testing.B) {
	benchDelivery(b, 100_000, wholeLog, func(ctx context.Context, f *readFixture, total int) int {
		return rawReceive(ctx, b, f, rdAllReq(uint64(total), nil))
	})
}

// rawReceive sends req with the generated stub and counts the events it
// receives until the read ends or, for a subscription, until caught_up.
func rawReceive(ctx context.Context, b *testing.B, f *readFixture, req *streams.ReadReq) int {
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	rs, err := f.raw.Read(ctx, req)
	if err != nil {
		b.Fatal(err)
	}
	got := 0
	for {
		m, err := rs.Recv()
		if errors.Is(err, io.EOF) {
			return got
		}
		if err != nil {
			b.Fatal(err)
		}
		switch {
		case m.GetEvent() != nil:
			got++
		case m.GetCaughtUp() != nil:
			return got
		case m.GetConfirmation() == nil && m.GetCheckpoint() == nil:
			b.Fatalf("unexpected message %v", m)
		}
	}
}

// BenchmarkCatchUpAllRawGRPC is BenchmarkCatchUpAll with the generated Streams
// stub as the subscriber: a catch-up subscription to $all from the start, every
// ReadResp decoded, until caught_up — the emulator's delivery rate over
// loopback gRPC without the official client's per-event conversion.
func BenchmarkCatchUpAllRawGRPC(b *testing.B) {
	req := rdAllReq(0, nil)
	req.Options.CountOption = &streams.ReadReq_Options_Subscription{Subscription: &streams.ReadReq_Options_SubscriptionOptions{}}
	benchDelivery(b, 100_000, wholeLog, func(ctx context.Context, f *readFixture, _ int) int {
		return rawReceive(ctx, b, f, req)
	})
}
