package resilience_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/kurrent-io/KurrentDB-Client-Go/kurrentdb"

	"github.com/projector-dev/projector/source/kurrent"
)

// The event types of the workload. Deposits are projected; noise is filtered out on the
// server, so the projector also moves through checkpoints.
const (
	typeDeposit = "resilience:Ledger.Deposited"
	typeNoise   = "resilience:Other.Noise"
)

// poisonValue is a deposit value the ledger's SQL cannot cast to bigint: a poison event.
const poisonValue = "not-a-number"

// retriesKey is the on_error.retries entry for n retries: none for 0, which the projections
// file refuses (a policy without retries leaves the key out).
func retriesKey(n int) string {
	if n == 0 {
		return ""
	}
	return fmt.Sprintf(", retries: %d", n)
}

// ledgerConfig is a projections file with the ledger projection (every deposit exactly once
// in ledger_applied, and running totals per stream in ledger_totals, so a doubled event shows
// in both) under the given error policy, and, with tally, a second projection over the same
// events that has no poison (it ignores the value).
func ledgerConfig(policy string, retries, batch int, tally bool) string {
	var b strings.Builder
	fmt.Fprintf(&b, `projections:
  - name: ledger
    batch: {size: %d, interval: 10ms}
    on_error: {policy: %s%s, backoff: 50ms}
    schema: |
      CREATE TABLE IF NOT EXISTS ledger_applied (stream text NOT NULL, revision bigint NOT NULL, value bigint NOT NULL);
      CREATE TABLE IF NOT EXISTS ledger_totals (stream text PRIMARY KEY, n bigint NOT NULL, total bigint NOT NULL);
    handlers:
      %q: |
        INSERT INTO ledger_applied VALUES (@stream_id, @revision, (@data->>'value')::bigint);
        INSERT INTO ledger_totals VALUES (@stream_id, 1, (@data->>'value')::bigint)
        ON CONFLICT (stream) DO UPDATE SET n = ledger_totals.n + 1, total = ledger_totals.total + excluded.total;
`, batch, policy, retriesKey(retries), typeDeposit)
	if tally {
		fmt.Fprintf(&b, `  - name: tally
    batch: {size: %d, interval: 10ms}
    schema: |
      CREATE TABLE IF NOT EXISTS tally_applied (stream text NOT NULL, revision bigint NOT NULL);
    handlers:
      %q: |
        INSERT INTO tally_applied VALUES (@stream_id, @revision);
`, batch, typeDeposit)
	}
	return b.String()
}

// ledgerFile writes the projections file of the ledger alone, stopping on errors, in batches
// of up to 200 events, and returns its path.
func ledgerFile(t *testing.T) string {
	t.Helper()
	return writeFile(t, "projections.yaml", ledgerConfig("stop", 0, 200, false))
}

// workload describes the events a writer appends: appends of perAppend deposits, round robin
// over accounts streams, plus a noise event every tenth append. poisonAt, when >= 0, makes the
// first deposit of that append a poison event.
type workload struct {
	accounts, appends, perAppend int
	poisonAt                     int
}

// standard is the suite's usual workload: 20,000 deposits over 200 streams.
func standard() workload { return workload{accounts: 200, appends: 1000, perAppend: 20, poisonAt: -1} }

func (w workload) deposits() int { return w.appends * w.perAppend }

// writer appends a workload, retrying each append (with the same event ids) through faults.
type writer struct {
	client *kurrentdb.Client
	w      workload
	// redial, when set, replaces the client once it has closed itself for good, as the
	// official client does after failing to reach a server that is down for longer than its
	// discovery attempts (about a second), as the daemon's source does.
	redial func() (*kurrentdb.Client, error)
	// pace, when set, is a pause after each append, so that faults meet the writer mid-way.
	pace time.Duration

	mu       sync.Mutex
	acked    int    // deposits acknowledged
	last     uint64 // commit position of the last acknowledged deposit append
	failures int    // failed attempts
	lastErr  error
}

// kurrentClient connects a KurrentDB client to uri.
func kurrentClient(t *testing.T, uri string) *kurrentdb.Client {
	t.Helper()
	c, err := kurrent.NewClient(uri, kurrent.ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func newWriter(c *kurrentdb.Client, w workload) *writer {
	return &writer{client: c, w: w}
}

// progress returns the deposits acknowledged so far and the position of the last one.
func (wr *writer) progress() (int, uint64) {
	wr.mu.Lock()
	defer wr.mu.Unlock()
	return wr.acked, wr.last
}

// run appends the whole workload, or stops with ctx's error.
func (wr *writer) run(ctx context.Context) error {
	value := 0
	for i := 0; i < wr.w.appends; i++ {
		stream := fmt.Sprintf("acct-%03d", i%wr.w.accounts)
		evs := make([]kurrentdb.EventData, wr.w.perAppend)
		for j := range evs {
			value++
			data := []byte(fmt.Sprintf(`{"value":%d}`, value))
			if i == wr.w.poisonAt && j == 0 {
				data = []byte(fmt.Sprintf(`{"value":%q}`, poisonValue))
			}
			evs[j] = kurrentdb.EventData{EventID: uuid.New(), EventType: typeDeposit, ContentType: kurrentdb.ContentTypeJson, Data: data}
		}
		pos, err := wr.append(ctx, stream, evs)
		if err != nil {
			return err
		}
		wr.mu.Lock()
		wr.acked += len(evs)
		wr.last = pos
		wr.mu.Unlock()
		if wr.pace > 0 {
			select {
			case <-time.After(wr.pace):
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		if i%10 == 9 {
			noise := kurrentdb.EventData{EventID: uuid.New(), EventType: typeNoise, ContentType: kurrentdb.ContentTypeJson, Data: []byte(`{}`)}
			if _, err := wr.append(ctx, fmt.Sprintf("noise-%d", i%7), []kurrentdb.EventData{noise}); err != nil {
				return err
			}
		}
	}
	return nil
}

func (wr *writer) append(ctx context.Context, stream string, evs []kurrentdb.EventData) (uint64, error) {
	for {
		actx, cancel := context.WithTimeout(ctx, 10*time.Second)
		r, err := wr.client.AppendToStream(actx, stream, kurrentdb.AppendToStreamOptions{}, evs...)
		cancel()
		if err == nil {
			return r.CommitPosition, nil
		}
		if ctx.Err() != nil {
			return 0, ctx.Err()
		}
		wr.mu.Lock()
		wr.failures++
		wr.lastErr = err
		wr.mu.Unlock()
		var ke *kurrentdb.Error
		if wr.redial != nil && errors.As(err, &ke) && ke.Code() == kurrentdb.ErrorCodeConnectionClosed {
			if c, err := wr.redial(); err == nil {
				_ = wr.client.Close()
				wr.client = c
			}
		}
		select {
		case <-time.After(100 * time.Millisecond):
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
}

// startWriter runs wr in the background; the returned function waits for it to finish and
// fails t if it did not append everything.
func startWriter(t *testing.T, wr *writer) func() {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	done := make(chan error, 1)
	go func() { done <- wr.run(ctx) }()
	t.Cleanup(cancel)
	return func() {
		t.Helper()
		if err := <-done; err != nil {
			t.Fatalf("writer: %v (after %d failed attempts, last %v)", err, wr.failures, wr.lastErr)
		}
	}
}
