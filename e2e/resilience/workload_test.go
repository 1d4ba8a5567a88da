package resilience_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/kurrent-io/KurrentDB-Client-Go/kurrentdb"

	"github.com/projector-dev/projector/internal/poll"
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

// logEvent is a deposit as the log holds it.
type logEvent struct {
	stream   string
	revision uint64
	commit   uint64
	id       string
	value    int64
	poison   bool
}

// readLog reads every deposit of $all, in log order: the truth the views are checked against.
func readLog(t *testing.T, c *kurrentdb.Client) []logEvent {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rs, err := c.ReadAll(ctx, kurrentdb.ReadAllOptions{From: kurrentdb.Start{}, Direction: kurrentdb.Forwards}, 1<<40)
	if err != nil {
		t.Fatalf("read $all: %v", err)
	}
	defer rs.Close()
	var out []logEvent
	for {
		re, err := rs.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("read $all: %v", err)
		}
		ev := re.Event
		if ev == nil || ev.EventType != typeDeposit {
			continue
		}
		le := logEvent{stream: ev.StreamID, revision: ev.EventNumber, commit: ev.Position.Commit, id: ev.EventID.String()}
		var d struct {
			Value json.RawMessage `json:"value"`
		}
		if err := json.Unmarshal(ev.Data, &d); err != nil {
			t.Fatalf("deposit %s: %v", le.id, err)
		}
		if err := json.Unmarshal(d.Value, &le.value); err != nil {
			le.poison = true
		}
		out = append(out, le)
	}
	return out
}

// tracked reads the projection's tracking row (zero when it has none).
func tracked(t *testing.T, pool *pgxpool.Pool, projection string) (commit, checkpoint uint64) {
	t.Helper()
	var c, cp int64
	err := pool.QueryRow(context.Background(), `SELECT coalesce(max(commit_position), 0), coalesce(max(checkpoint_position), 0)
		FROM projector_tracking WHERE projection = $1`, projection).Scan(&c, &cp)
	if err != nil && !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("read tracking of %s: %v", projection, err)
	}
	return uint64(c), uint64(cp)
}

// waitTracked waits until projection has processed the log position commit.
func waitTracked(t *testing.T, pool *pgxpool.Pool, projection string, commit uint64, d time.Duration) {
	t.Helper()
	poll.Until(t, d, fmt.Sprintf("%s processes position %d", projection, commit), func() bool {
		c, cp := tracked(t, pool, projection)
		return c >= commit || cp > commit
	})
}

type key struct {
	stream   string
	revision uint64
}

// checkApplied asserts that table (stream, revision) holds each of want exactly once and
// nothing else, and returns a one-line summary.
func checkApplied(t *testing.T, pool *pgxpool.Pool, table string, want []logEvent) string {
	t.Helper()
	rows, err := pool.Query(context.Background(), `SELECT stream, revision FROM `+table)
	if err != nil {
		t.Fatalf("read %s: %v", table, err)
	}
	got := map[key]int{}
	n := 0
	for rows.Next() {
		var k key
		var rev int64
		if err := rows.Scan(&k.stream, &rev); err != nil {
			t.Fatal(err)
		}
		k.revision = uint64(rev)
		got[k]++
		n++
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	var missing, doubled, extra []string
	wantSet := map[key]bool{}
	for _, e := range want {
		k := key{e.stream, e.revision}
		wantSet[k] = true
		switch c := got[k]; {
		case c == 0:
			missing = append(missing, fmt.Sprintf("%s@%d(pos %d)", k.stream, k.revision, e.commit))
		case c > 1:
			doubled = append(doubled, fmt.Sprintf("%s@%d×%d", k.stream, k.revision, c))
		}
	}
	for k := range got {
		if !wantSet[k] {
			extra = append(extra, fmt.Sprintf("%s@%d", k.stream, k.revision))
		}
	}
	if len(missing)+len(doubled)+len(extra) > 0 {
		sort.Strings(extra)
		t.Errorf("%s: %d rows for %d expected events: %d lost %v, %d doubled %v, %d unexpected %v", table, n, len(want),
			len(missing), head(missing), len(doubled), head(doubled), len(extra), head(extra))
	}
	return fmt.Sprintf("%s: %d events exactly once", table, len(want))
}

func head(s []string) []string {
	if len(s) > 5 {
		return append(s[:5:5], "…")
	}
	return s
}

// checkLedger asserts the ledger view holds exactly want: every event once in ledger_applied,
// and per stream the count and sum of values in ledger_totals. It returns a summary.
func checkLedger(t *testing.T, pool *pgxpool.Pool, want []logEvent) string {
	t.Helper()
	summary := checkApplied(t, pool, "ledger_applied", want)
	type agg struct{ n, sum int64 }
	exp := map[string]agg{}
	var total agg
	for _, e := range want {
		a := exp[e.stream]
		a.n++
		a.sum += e.value
		exp[e.stream] = a
		total.n++
		total.sum += e.value
	}
	rows, err := pool.Query(context.Background(), `SELECT stream, n, total FROM ledger_totals`)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]agg{}
	for rows.Next() {
		var s string
		var a agg
		if err := rows.Scan(&s, &a.n, &a.sum); err != nil {
			t.Fatal(err)
		}
		got[s] = a
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	bad := 0
	for s, a := range exp {
		if got[s] != a {
			bad++
			if bad <= 5 {
				t.Errorf("ledger_totals[%s] = %+v, want %+v", s, got[s], a)
			}
		}
	}
	for s, a := range got {
		if _, ok := exp[s]; !ok {
			t.Errorf("ledger_totals has unexpected stream %s = %+v", s, a)
		}
	}
	return fmt.Sprintf("%s; %d streams, count %d, sum %d", summary, len(exp), total.n, total.sum)
}

// doneBy returns the events of want that the tracking state (commit, checkpoint) says are
// processed: the view must hold exactly these whenever no batch is in flight.
func doneBy(want []logEvent, commit, checkpoint uint64) []logEvent {
	var out []logEvent
	for _, e := range want {
		if (commit > 0 && e.commit <= commit) || e.commit < checkpoint {
			out = append(out, e)
		}
	}
	return out
}

// valid returns the events of want that are not poison.
func valid(want []logEvent) []logEvent {
	var out []logEvent
	for _, e := range want {
		if !e.poison {
			out = append(out, e)
		}
	}
	return out
}

// applied counts the rows of table (0 while it does not exist).
func applied(t *testing.T, pool *pgxpool.Pool, table string) int {
	t.Helper()
	var n int
	err := pool.QueryRow(context.Background(), `SELECT count(*) FROM `+table).Scan(&n)
	if err != nil && !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("count %s: %v", table, err)
	}
	return n
}

// atApplied waits until the ledger view holds at least n events, so a fault lands while the
// projector is at that point of the workload.
func atApplied(t *testing.T, pool *pgxpool.Pool, n int) {
	t.Helper()
	poll.Until(t, 90*time.Second, fmt.Sprintf("the ledger holds %d events", n), func() bool { return applied(t, pool, "ledger_applied") >= n })
}
