package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/projector-dev/projector/examples/trainingschool"
	"github.com/projector-dev/projector/internal/httpapi"
	"github.com/projector-dev/projector/internal/poll"
	"github.com/projector-dev/projector/internal/testbin"
)

// deadLetterConfig is a projections file whose handler fails on dogs named bad-* (division by
// zero) while broken, under the skip policy. A fixed handler is adopted from the current
// position (on_change: continue), the way a fix that the dead letters' replay completes is
// deployed.
func deadLetterConfig(broken bool) string {
	value := "1"
	if broken {
		value = "1 / (CASE WHEN @data->>'name' LIKE 'bad-%' THEN 0 ELSE 1 END)"
	}
	return `projections:
  - name: names
    on_error: {policy: skip}
    on_change: continue
    schema: CREATE TABLE IF NOT EXISTS names (name text NOT NULL, n int NOT NULL);
    reset: DELETE FROM names
    handlers:
      "__main__:Dog.Registered": INSERT INTO names VALUES (@data->>'name', ` + value + `)
`
}

// TestDeadLetterReplayAfterTheHandlerIsFixed runs the daemon with a handler that fails on some
// events (policy skip: they become dead letters), lists, shows and purges them with the CLI,
// sees a replay through the still-broken handler refused (exit 1, 422, nothing applied), then
// restarts the daemon with the handler fixed in the projections file and replays them: each
// event lands in the view exactly once, the dead letters are gone, tracking has not moved, and
// projector_dead_letters follows. The commands are refused without the admin token and with a
// wrong one.
func TestDeadLetterReplayAfterTheHandlerIsFixed(t *testing.T) {
	t.Parallel()
	dbURL, pool, uri, client := startBackends(t)
	school := trainingschool.NewSchool(client)
	ctx := context.Background()
	var last uint64
	for _, name := range []string{"dog-0", "bad-1", "dog-2", "bad-3", "dog-4", "bad-5"} {
		pos, err := school.Register(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		last = pos
	}
	addr := testbin.FreeAddr(t)
	const token = "e2e-dead-letter-token"
	env := func(broken bool) []string {
		return testbin.Env("KURRENTDB_URI="+uri, "DATABASE_URL="+dbURL, "PROJECTOR_HTTP_ADDR="+addr,
			"PROJECTOR_CONFIG="+writeFile(t, "p.yaml", deadLetterConfig(broken)), "PROJECTOR_ADMIN_TOKEN="+token)
	}
	caughtUp := func(d *testbin.Proc) {
		t.Helper()
		healthy(t, d, addr)
		poll.Until(t, 30*time.Second, "names has projected every event", func() bool {
			var p httpapi.ProjectionJSON
			getJSON(t, "http://"+addr+"/v1/projections/names", &p)
			return p.Leader && p.Position >= last
		})
	}
	digest := func() string {
		t.Helper()
		var s string
		if err := pool.QueryRow(ctx, `SELECT coalesce(string_agg(name || ':' || n, ',' ORDER BY name), '') FROM names`).Scan(&s); err != nil {
			t.Fatal(err)
		}
		return s
	}
	tracked := func() string {
		t.Helper()
		var c, p int64
		if err := pool.QueryRow(ctx, `SELECT commit_position, prepare_position FROM projector_tracking WHERE projection = 'names'`).Scan(&c, &p); err != nil {
			t.Fatal(err)
		}
		return fmt.Sprint(c, "/", p)
	}
	deadLetterGauge := func() string {
		_, b := httpGet(t, "http://"+addr+"/metrics")
		return regexp.MustCompile(`(?m)^projector_dead_letters\{projection="names"\} .*$`).FindString(string(b))
	}

	broken := env(true)
	d := start(t, projectorBin, broken, "run")
	caughtUp(d)
	if got := digest(); got != "dog-0:1,dog-2:1,dog-4:1" {
		t.Fatalf("view with the broken handler = %q", got)
	}
	code, out, errOut := runProjector(t, broken, "dead-letters", "list", "names", "--json")
	var list httpapi.DeadLettersJSON
	if code != 0 || json.Unmarshal([]byte(out), &list) != nil || len(list.DeadLetters) != 3 {
		t.Fatalf("dead-letters list --json: %d\n%s%s", code, out, errOut)
	}
	for i, want := range []string{"bad-1", "bad-3", "bad-5"} {
		dl := list.DeadLetters[i]
		if dl.Stream != trainingschool.DogID(want).String() || !strings.Contains(dl.Error, "division by zero") || !strings.Contains(dl.Data, want) {
			t.Errorf("dead letter %d = %+v, want %s's event failing on division by zero", i, dl, want)
		}
	}
	bad1, bad3, bad5 := list.DeadLetters[0].ID, list.DeadLetters[1].ID, list.DeadLetters[2].ID
	if code, out, _ := runProjector(t, broken, "dead-letters", "list"); code != 0 || strings.Count(out, "__main__:Dog.Registered") != 3 || !strings.HasPrefix(out, "ID ") {
		t.Errorf("dead-letters list: %d\n%s", code, out)
	}
	code, out, _ = runProjector(t, broken, "dead-letters", "show", fmt.Sprint(bad3))
	var shown httpapi.DeadLetterJSON
	if code != 0 || json.Unmarshal([]byte(out), &shown) != nil || shown.ID != bad3 || !strings.Contains(shown.Data, "bad-3") {
		t.Errorf("dead-letters show %d: %d\n%s", bad3, code, out)
	}
	code, out, _ = runProjector(t, testbin.Env("PROJECTOR_HTTP_ADDR="+addr), "dead-letters", "show", fmt.Sprint(bad3))
	shown = httpapi.DeadLetterJSON{}
	if code != 0 || json.Unmarshal([]byte(out), &shown) != nil || !shown.DataWithheld || shown.Data != "" || shown.EventID == "" {
		t.Errorf("dead-letters show %d without the token: %d\n%s, want the data withheld", bad3, code, out)
	}
	if g := deadLetterGauge(); g != `projector_dead_letters{projection="names"} 3` {
		t.Errorf("gauge with 3 dead letters: %q", g)
	}

	// The commands need the token.
	replayURL := "http://" + addr + "/v1/projections/names/dead-letters/replay?all=true"
	for tok, want := range map[string]int{"": http.StatusUnauthorized, "wrong": http.StatusUnauthorized} {
		if code, body := postJSON(t, replayURL, tok, nil); code != want {
			t.Errorf("replay with token %q = %d %s, want %d", tok, code, body, want)
		}
	}
	noToken := testbin.Env("KURRENTDB_URI="+uri, "DATABASE_URL="+dbURL, "PROJECTOR_HTTP_ADDR="+addr)
	if code, _, errOut := runProjector(t, noToken, "dead-letters", "purge", "names", "--yes"); code != 1 || !strings.Contains(errOut, "401") {
		t.Errorf("purge without the token: %d %s", code, errOut)
	}
	if code, _, errOut := runProjector(t, broken, "dead-letters", "purge", fmt.Sprint(bad5)); code != 2 || !strings.Contains(errOut, "--yes") {
		t.Errorf("purge without --yes: %d %s", code, errOut)
	}
	// Still broken: the replay is refused with the handler's error and changes nothing.
	code, _, errOut = runProjector(t, broken, "dead-letters", "replay", "names")
	if code != 1 || !strings.Contains(errOut, "division by zero") || !strings.Contains(errOut, "422") {
		t.Errorf("replay through the broken handler: %d %s", code, errOut)
	}
	if got := digest(); got != "dog-0:1,dog-2:1,dog-4:1" {
		t.Errorf("view after the refused replay = %q", got)
	}
	if code, out, errOut := runProjector(t, broken, "dead-letters", "purge", fmt.Sprint(bad5), "--yes"); code != 0 || !strings.Contains(out, "purged 1 dead letter(s) of names") {
		t.Errorf("purge %d: %d %s%s", bad5, code, out, errOut)
	}
	before := tracked()
	if c := d.Signal(syscall.SIGTERM, exitTimeout); c != 0 {
		t.Fatalf("daemon exit %d", c)
	}

	// The handler fixed in the projections file: the replay applies each event once.
	fixed := env(false)
	d = start(t, projectorBin, fixed, "run")
	caughtUp(d)
	code, out, errOut = runProjector(t, fixed, "dead-letters", "replay", fmt.Sprint(bad1))
	if code != 0 || !strings.Contains(out, "replayed 1 dead letter(s) of names") {
		t.Errorf("replay %d: %d %s%s", bad1, code, out, errOut)
	}
	code, out, errOut = runProjector(t, fixed, "dead-letters", "replay", "names")
	if code != 0 || !strings.Contains(out, "replayed 1 dead letter(s) of names") || !strings.Contains(out, fmt.Sprintf("%d: event ", bad3)) {
		t.Errorf("replay names: %d %s%s", code, out, errOut)
	}
	if code, out, _ := runProjector(t, fixed, "dead-letters", "replay", "names"); code != 0 || !strings.Contains(out, "replayed 0") {
		t.Errorf("second replay: %d %s", code, out)
	}
	if got := digest(); got != "bad-1:1,bad-3:1,dog-0:1,dog-2:1,dog-4:1" {
		t.Errorf("view after the replay = %q, want each replayed event once (bad-5 purged)", got)
	}
	if after := tracked(); after != before {
		t.Errorf("tracking moved from %s to %s", before, after)
	}
	if code, out, _ := runProjector(t, fixed, "dead-letters", "list"); code != 0 || strings.TrimSpace(out) != "no dead letters" {
		t.Errorf("dead-letters list after: %d %s", code, out)
	}
	if code, _, errOut := runProjector(t, fixed, "dead-letters", "show", fmt.Sprint(bad1)); code != 1 || !strings.Contains(errOut, "404") {
		t.Errorf("show of a replayed dead letter: %d %s", code, errOut)
	}
	if g := deadLetterGauge(); g != `projector_dead_letters{projection="names"} 0` {
		t.Errorf("gauge after the replay: %q", g)
	}
	if c := d.Signal(syscall.SIGTERM, exitTimeout); c != 0 {
		t.Errorf("daemon exit %d", c)
	}
}
