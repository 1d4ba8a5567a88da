package emulator

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/kurrent-io/KurrentDB-Client-Go/kurrentdb"
)

// BenchmarkAppendBatches appends batches of 100 JSON events of about 200
// bytes each through the official client over loopback gRPC and reports
// the throughput in events per second.
func BenchmarkAppendBatches(b *testing.B) {
	srv := startTest(b, Options{})
	c := newTestClient(b, srv.URI())
	ctx := context.Background()
	const batch = 100
	payload := []byte(fmt.Sprintf(`{"order_id":"%s","customer":"c-000042","sku":"SKU-12345","quantity":3,"price":"19.99","currency":"EUR","note":"%s"}`,
		uuid.NewString(), "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"))
	events := make([]kurrentdb.EventData, batch)
	streamName := "bench-" + uuid.NewString()
	if _, err := c.AppendToStream(ctx, streamName, kurrentdb.AppendToStreamOptions{}, testEvents(1, "Warmup")...); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(batch * len(payload)))
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		for j := range events {
			events[j] = kurrentdb.EventData{
				EventID: uuid.New(), EventType: "OrderPlaced", ContentType: kurrentdb.ContentTypeJson, Data: payload,
			}
		}
		if _, err := c.AppendToStream(ctx, streamName, kurrentdb.AppendToStreamOptions{}, events...); err != nil {
			b.Fatal(err)
		}
	}
	elapsed := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(b.N*batch)/elapsed.Seconds(), "events/s")
}

// BenchmarkAppendBatchesParallel is BenchmarkAppendBatches with concurrent
// writers (GOMAXPROCS goroutines, each on its own stream), sharing one
// client connection as an application would.
func BenchmarkAppendBatchesParallel(b *testing.B) {
	srv := startTest(b, Options{})
	c := newTestClient(b, srv.URI())
	const batch = 100
	payload := []byte(fmt.Sprintf(`{"order_id":"%s","customer":"c-000042","sku":"SKU-12345","quantity":3,"price":"19.99","currency":"EUR","note":"%s"}`,
		uuid.NewString(), "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"))
	if _, err := c.AppendToStream(context.Background(), "warmup", kurrentdb.AppendToStreamOptions{}, testEvents(1, "Warmup")...); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(batch * len(payload)))
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		streamName := "bench-" + uuid.NewString()
		events := make([]kurrentdb.EventData, batch)
		for pb.Next() {
			for j := range events {
				events[j] = kurrentdb.EventData{
					EventID: uuid.New(), EventType: "OrderPlaced", ContentType: kurrentdb.ContentTypeJson, Data: payload,
				}
			}
			if _, err := c.AppendToStream(context.Background(), streamName, kurrentdb.AppendToStreamOptions{}, events...); err != nil {
				b.Error(err)
				return
			}
		}
	})
	elapsed := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(b.N*batch)/elapsed.Seconds(), "events/s")
}
