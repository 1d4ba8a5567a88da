package resilience_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/kurrent-io/KurrentDB-Client-Go/kurrentdb"

	"github.com/projector-dev/projector/internal/poll"
)

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
