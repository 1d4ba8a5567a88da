package main

import (
	"context"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/kurrent-io/KurrentDB-Client-Go/kurrentdb"

	"github.com/projector-dev/projector/examples/trainingschool"
	"github.com/projector-dev/projector/internal/httpapi"
	"github.com/projector-dev/projector/internal/poll"
	"github.com/projector-dev/projector/internal/testbin"
	"github.com/projector-dev/projector/views/postgres"
)

// TestStandbyWaitAndTakeover runs two replicas on one database: they share the two
// projections, one each; the replica that does not lead "dogs" is its standby, whose wait API
// still answers (it reads PostgreSQL), and which takes over when the leader is killed.
func TestStandbyWaitAndTakeover(t *testing.T) {
	t.Parallel()
	dbURL, pool, uri, client := startBackends(t)
	last := appendDogs(t, client, 0, 20, 3)
	cfgFile := writeFile(t, "projections.yaml", bothProjections(t))

	// The member ids decide the shares: "dogs" goes to the first replica.
	both := []string{"dog_counts", "dogs"}
	if got := postgres.Assign([]postgres.Member{{ID: "first", Projections: both}, {ID: "second", Projections: both}}, both); got["dogs"] != "first" || got["dog_counts"] != "second" {
		t.Fatalf("assignment %v; pick member ids that give dogs to the first replica", got)
	}
	addrA, addrB := testbin.FreeAddr(t), testbin.FreeAddr(t)
	env := func(addr, member string) []string {
		return testbin.Env("KURRENTDB_URI="+uri, "DATABASE_URL="+dbURL, "PROJECTOR_HTTP_ADDR="+addr, "PROJECTOR_CONFIG="+cfgFile, "PROJECTOR_ADMIN_TOKEN="+e2eToken, "PROJECTOR_MEMBER_ID="+member)
	}
	a := start(t, projectorBin, env(addrA, "first"), "run")
	healthy(t, a, addrA)
	waitHTTP(t, addrA, "dogs", last)
	b := start(t, projectorBin, env(addrB, "second"), "run")
	healthy(t, b, addrB)
	poll.Until(t, 20*time.Second, "the second replica leads dog_counts and is a standby for dogs", func() bool {
		var l httpapi.ListJSON
		getJSON(t, "http://"+addrB+"/v1/projections", &l)
		for _, p := range l.Projections {
			if want := p.Name == "dog_counts"; p.Leader != want || (!want && p.State != "standby") || p.LeaderMember != map[bool]string{true: "second", false: "first"}[want] {
				return false
			}
		}
		return len(l.Projections) == 2
	})
	if v := metricValue(t, addrB, `projector_leader{projection="dogs"}`); v != 0 {
		t.Errorf("standby leader gauge = %v", v)
	}
	if code, body := httpGet(t, "http://"+addrB+"/readyz"); code != 200 {
		t.Errorf("standby /readyz = %d %s", code, body)
	}
	// A command sent to the standby says that the leader is the one to ask.
	if code, _, errOut := runProjector(t, env(addrB, "second"), "resume", "dogs"); code != 1 || !strings.Contains(errOut, "this replica does not lead the projection (it is standby here)") {
		t.Errorf("resume on the standby: exit %d %s", code, errOut)
	}

	// A write waited for on the standby.
	pos, err := appendOne(client, "dog-00001", 3, "fetch")
	if err != nil {
		t.Fatal(err)
	}
	w := waitHTTP(t, addrB, "dogs", pos)
	if w.Position < pos {
		t.Errorf("standby wait = %+v", w)
	}

	// The leader dies; the standby takes over and projects what follows.
	if code := a.Signal(syscall.SIGKILL, exitTimeout); code != -1 {
		t.Fatalf("exit code %d", code)
	}
	pos, err = appendOne(client, "dog-00002", 3, "fetch")
	if err != nil {
		t.Fatal(err)
	}
	waitHTTP(t, addrB, "dogs", pos)
	waitHTTP(t, addrB, "dog_counts", pos)
	poll.Until(t, 20*time.Second, "the standby leads", func() bool {
		return metricValue(t, addrB, `projector_leader{projection="dogs"}`) == 1
	})
	if got := viewDigest(t, pool); !strings.HasPrefix(got, "dogs=20,tricks=62 dogs=20 tricks=62 rows=62") {
		t.Errorf("views = %s", got)
	}
	if code := b.Signal(syscall.SIGTERM, exitTimeout); code != 0 {
		t.Errorf("exit code %d", code)
	}
}

// appendOne adds a trick to a dog whose last revision is rev, with plain client calls.
func appendOne(c *kurrentdb.Client, dog string, rev uint64, trick string) (uint64, error) {
	r, err := c.AppendToStream(context.Background(), trainingschool.DogID(dog).String(), kurrentdb.AppendToStreamOptions{StreamState: kurrentdb.Revision(rev)},
		kurrentdb.EventData{EventID: uuid.New(), EventType: "__main__:Dog.TrickAdded", ContentType: kurrentdb.ContentTypeBinary,
			Data: []byte(`{"timestamp":{"_type_":"datetime_iso","_data_":"2026-01-01T00:00:00.000000+00:00"},"trick":"` + trick + `"}`), Metadata: []byte{}})
	if err != nil {
		return 0, err
	}
	return r.CommitPosition, nil
}

// TestPoisonEvents sends an event whose data is not JSON to two projections that use @data:
// policy skip dead-letters it and goes on; policy stop halts that projection only, and
// /readyz, /v1/projections and the logs name the event.
func TestPoisonEvents(t *testing.T) {
	t.Parallel()
	dbURL, pool, uri, client := startBackends(t)
	cfg := `projections:
  - name: skipper
    on_error: {policy: skip}
    schema: CREATE TABLE IF NOT EXISTS skipped_names (name text);
    handlers:
      "__main__:Dog.Registered": INSERT INTO skipped_names VALUES (@data->>'name')
  - name: stopper
    schema: CREATE TABLE IF NOT EXISTS stopped_names (name text);
    handlers:
      "__main__:Dog.Registered": INSERT INTO stopped_names VALUES (@data->>'name')
`
	appendDogs(t, client, 0, 2, 0)
	var badPos uint64
	bad := uuid.New()
	if badAt, err := client.AppendToStream(context.Background(), "dog-bad", kurrentdb.AppendToStreamOptions{},
		kurrentdb.EventData{EventID: bad, EventType: "__main__:Dog.Registered", ContentType: kurrentdb.ContentTypeBinary, Data: []byte("\x80not json")}); err != nil {
		t.Fatal(err)
	} else {
		badPos = badAt.CommitPosition
	}
	last := appendDogs(t, client, 2, 2, 0)

	addr := testbin.FreeAddr(t)
	d := start(t, projectorBin, testbin.Env("KURRENTDB_URI="+uri, "DATABASE_URL="+dbURL, "PROJECTOR_HTTP_ADDR="+addr,
		"PROJECTOR_CONFIG="+writeFile(t, "p.yaml", cfg)), "run")
	healthy(t, d, addr)
	waitHTTP(t, addr, "skipper", last)
	var n int
	if err := pool.QueryRow(context.Background(), "SELECT count(*) FROM skipped_names").Scan(&n); err != nil || n != 4 {
		t.Errorf("skipper projected %d names, want 4 (%v)", n, err)
	}
	var deadID, deadErr string
	if err := pool.QueryRow(context.Background(), "SELECT event_id, error FROM projector_dead_letters WHERE projection = 'skipper'").Scan(&deadID, &deadErr); err != nil {
		t.Fatal(err)
	}
	if deadID != bad.String() || !strings.Contains(deadErr, "data is not JSON") || !strings.Contains(deadErr, bad.String()) {
		t.Errorf("dead letter %s: %s", deadID, deadErr)
	}
	// The wait answers from PostgreSQL's notification of the commit, which may come before the
	// daemon counts it.
	poll.Until(t, 10*time.Second, "the dead letter is counted", func() bool {
		return metricValue(t, addr, `projector_events_dead_lettered_total{projection="skipper"}`) == 1
	})
	if v := metricValue(t, addr, `projector_events_dead_lettered_total{projection="skipper"}`); v != 1 {
		t.Errorf("dead lettered = %v", v)
	}

	poll.Until(t, 20*time.Second, "stopper is stopped", func() bool {
		var p httpapi.ProjectionJSON
		getJSON(t, "http://"+addr+"/v1/projections/stopper", &p)
		return p.State == "stopped" && p.Failed != nil && p.Failed.EventID == bad.String()
	})
	code, body := httpGet(t, "http://"+addr+"/readyz")
	if code != 503 || !strings.Contains(string(body), "projection stopper: stopped on event "+bad.String()) {
		t.Errorf("/readyz = %d %s", code, body)
	}
	// The stopped projection's position is before the poison event, and nothing after it was
	// applied.
	var p httpapi.ProjectionJSON
	getJSON(t, "http://"+addr+"/v1/projections/stopper", &p)
	if p.Position >= badPos {
		t.Errorf("stopper at %d, past the poison event at %d", p.Position, badPos)
	}
	if err := pool.QueryRow(context.Background(), "SELECT count(*) FROM stopped_names WHERE name IN ('dog-00002', 'dog-00003')").Scan(&n); err != nil || n != 0 {
		t.Errorf("stopper applied %d events after the poison event (%v)", n, err)
	}
	if v := metricValue(t, addr, `projector_errors_total{kind="handler",projection="stopper"}`); v < 1 {
		t.Errorf("handler errors = %v", v)
	}
	if !strings.Contains(d.Output(), fmt.Sprintf(`"event_id":"%s"`, bad)) {
		t.Errorf("the log does not name the poison event")
	}
	if code := d.Signal(syscall.SIGTERM, exitTimeout); code != 0 {
		t.Errorf("exit code %d", code)
	}
}
