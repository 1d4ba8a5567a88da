package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/projector-dev/projector/examples/trainingschool"
	"github.com/projector-dev/projector/internal/httpapi"
	"github.com/projector-dev/projector/internal/poll"
	"github.com/projector-dev/projector/internal/testbin"
)

// parkingConfig is a projections file under the park policy whose view refuses the trick
// "poison" (a check constraint the test drops to fix the cause).
const parkingConfig = `projections:
  - name: tricks
    on_error: {policy: park}
    schema: |
      CREATE TABLE IF NOT EXISTS tricks (id bigserial PRIMARY KEY, dog text NOT NULL, revision bigint NOT NULL,
        trick text NOT NULL CONSTRAINT no_poison CHECK (trick <> 'poison'));
    handlers:
      "__main__:Dog.Registered": INSERT INTO tricks (dog, revision, trick) VALUES (@stream_id, @revision, 'registered')
      "__main__:Dog.TrickAdded": INSERT INTO tricks (dog, revision, trick) VALUES (@stream_id, @revision, @data->>'trick')
`

// TestParkingStopsOnlyThePoisonedStream runs the daemon with a handler that fails on one dog's
// trick under the park policy: that dog's stream is parked (its later events too, even after
// the daemon has seen them) while the other dog's events keep being applied; a resume through
// the CLI is refused while the cause remains, and once the constraint is dropped it replays the
// parked events in order, exactly once, before the stream's new events.
func TestParkingStopsOnlyThePoisonedStream(t *testing.T) {
	t.Parallel()
	dbURL, pool, uri, client := startBackends(t)
	school := trainingschool.NewSchool(client)
	ctx := context.Background()
	var last uint64
	do := func(pos uint64, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		last = pos
	}
	do(school.Register(ctx, "rex"))
	do(school.Register(ctx, "fido"))
	do(school.AddTrick(ctx, "rex", "sit"))
	do(school.AddTrick(ctx, "fido", "poison")) // fido revision 1
	do(school.AddTrick(ctx, "fido", "roll"))
	do(school.AddTrick(ctx, "rex", "paw"))

	addr := testbin.FreeAddr(t)
	const token = "e2e-parking-token"
	env := testbin.Env("KURRENTDB_URI="+uri, "DATABASE_URL="+dbURL, "PROJECTOR_HTTP_ADDR="+addr,
		"PROJECTOR_CONFIG="+writeFile(t, "p.yaml", parkingConfig), "PROJECTOR_ADMIN_TOKEN="+token)
	if code, out, errOut := runProjector(t, env, "migrate"); code != 0 {
		t.Fatalf("migrate: %d %s%s", code, out, errOut)
	}
	rex, fido := trainingschool.DogID("rex").String(), trainingschool.DogID("fido").String()
	revisions := func(dog string) []int64 {
		t.Helper()
		rows, err := pool.Query(ctx, `SELECT revision FROM tricks WHERE dog = $1 ORDER BY id`, dog)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var out []int64
		for rows.Next() {
			var r int64
			if err := rows.Scan(&r); err != nil {
				t.Fatal(err)
			}
			out = append(out, r)
		}
		return out
	}
	projected := func() httpapi.ProjectionJSON {
		t.Helper()
		var p httpapi.ProjectionJSON
		poll.Until(t, 30*time.Second, fmt.Sprintf("tricks has projected through %d", last), func() bool {
			getJSON(t, "http://"+addr+"/v1/projections/tricks", &p)
			return p.Leader && p.Position >= last
		})
		return p
	}
	parked := func() []httpapi.ParkedStreamJSON {
		t.Helper()
		code, out, errOut := runProjector(t, env, "parked", "list", "tricks", "--json")
		var list httpapi.ParkedJSON
		if code != 0 || json.Unmarshal([]byte(out), &list) != nil {
			t.Fatalf("parked list --json: %d\n%s%s", code, out, errOut)
		}
		return list.Parked
	}
	gauge := func() string {
		_, b := httpGet(t, "http://"+addr+"/metrics")
		return regexp.MustCompile(`(?m)^projector_parked_streams\{projection="tricks"\} .*$`).FindString(string(b))
	}

	d := start(t, projectorBin, env, "run")
	healthy(t, d, addr)
	p := projected()
	if p.State == "stopped" || p.ParkedStreams != 1 {
		t.Errorf("status = %+v, want running with one parked stream", p)
	}
	if got := revisions(rex); !slices.Equal(got, []int64{0, 1, 2}) {
		t.Errorf("rex's revisions = %v, want 0..2", got)
	}
	if got := revisions(fido); !slices.Equal(got, []int64{0}) {
		t.Errorf("fido's revisions = %v, want [0]: parked from its poison trick", got)
	}
	ps := parked()
	if len(ps) != 1 || ps[0].Stream != fido || ps[0].Events != 2 || ps[0].Revision != 1 || !strings.Contains(ps[0].Error, "no_poison") {
		t.Fatalf("parked streams = %+v, want fido from revision 1 (2 events) failing on no_poison", ps)
	}

	// Events appended to the parked stream afterwards are parked; the other stream goes on.
	do(school.AddTrick(ctx, "fido", "jump"))
	do(school.AddTrick(ctx, "rex", "beg"))
	projected()
	if got := revisions(rex); !slices.Equal(got, []int64{0, 1, 2, 3}) {
		t.Errorf("rex's revisions = %v, want 0..3", got)
	}
	if got := revisions(fido); !slices.Equal(got, []int64{0}) {
		t.Errorf("fido's revisions while parked = %v, want [0]", got)
	}
	if ps := parked(); len(ps) != 1 || ps[0].Events != 3 {
		t.Errorf("parked streams = %+v, want fido with 3 events", ps)
	}
	if code, out, _ := runProjector(t, env, "parked", "list"); code != 0 || !strings.Contains(out, fido) || !strings.HasPrefix(out, "PROJECTION ") {
		t.Errorf("parked list: %d\n%s", code, out)
	}
	if code, out, _ := runProjector(t, env, "status"); code != 0 || !strings.Contains(out, "tricks: 1 parked stream(s)") {
		t.Errorf("status with fido parked: %d\n%s", code, out)
	}
	if g := gauge(); g != `projector_parked_streams{projection="tricks"} 1` {
		t.Errorf("gauge with fido parked: %q", g)
	}

	// The resume is a command: refused without the token; while the cause remains the handler
	// fails again and nothing changes.
	resumeURL := "http://" + addr + "/v1/projections/tricks/parked/resume?stream=" + url.QueryEscape(fido)
	if code, body := postJSON(t, resumeURL, "", nil); code != http.StatusUnauthorized {
		t.Errorf("resume without the token = %d %s, want 401", code, body)
	}
	code, _, errOut := runProjector(t, env, "parked", "resume", "tricks", fido)
	if code != 1 || !strings.Contains(errOut, "422") || !strings.Contains(errOut, "no_poison") {
		t.Errorf("resume while still failing: %d %s", code, errOut)
	}
	if got := revisions(fido); !slices.Equal(got, []int64{0}) {
		t.Errorf("fido's revisions after the refused resume = %v, want [0]", got)
	}

	// Fixed: the resume replays fido's parked events in order, once.
	if _, err := pool.Exec(ctx, `ALTER TABLE tricks DROP CONSTRAINT no_poison`); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := runProjector(t, env, "parked", "resume", "tricks", fido)
	if code != 0 || !strings.Contains(out, "replayed 3 parked event(s)") {
		t.Fatalf("resume: %d %s%s", code, out, errOut)
	}
	if got := revisions(fido); !slices.Equal(got, []int64{0, 1, 2, 3}) {
		t.Errorf("fido's revisions after the resume = %v, want 0..3 in order", got)
	}
	if code, out, _ := runProjector(t, env, "parked", "list", "tricks"); code != 0 || strings.TrimSpace(out) != "no parked streams" {
		t.Errorf("parked list after the resume: %d %s", code, out)
	}
	if code, _, errOut := runProjector(t, env, "parked", "resume", "tricks", fido); code != 1 || !strings.Contains(errOut, "404") {
		t.Errorf("a second resume: %d %s, want 404", code, errOut)
	}
	do(school.AddTrick(ctx, "fido", "shake"))
	if p := projected(); p.ParkedStreams != 0 {
		t.Errorf("status after the resume = %+v, want no parked stream", p)
	}
	if got := revisions(fido); !slices.Equal(got, []int64{0, 1, 2, 3, 4}) {
		t.Errorf("fido's revisions after a new trick = %v, want 0..4", got)
	}
	if g := gauge(); g != `projector_parked_streams{projection="tricks"} 0` {
		t.Errorf("gauge after the resume: %q", g)
	}
	if c := d.Signal(syscall.SIGTERM, exitTimeout); c != 0 {
		t.Errorf("daemon exit %d", c)
	}
}
