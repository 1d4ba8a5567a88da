package httpapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/projector-dev/projector/internal/httpapi"
	"github.com/projector-dev/projector/projection"
	"github.com/projector-dev/projector/tracking"
)

// letters is a DeadLetters in memory; replaying fails while broken.
type letters struct {
	mu     sync.Mutex
	all    []httpapi.DeadLetterJSON
	broken bool
	calls  []string
}

func (l *letters) List(_ context.Context, name string) ([]httpapi.DeadLetterJSON, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []httpapi.DeadLetterJSON
	for _, d := range l.all {
		if name == "" || d.Projection == name {
			out = append(out, d)
		}
	}
	return out, nil
}

func (l *letters) Get(_ context.Context, id int64) (httpapi.DeadLetterJSON, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, d := range l.all {
		if d.ID == id {
			return d, nil
		}
	}
	return httpapi.DeadLetterJSON{}, fmt.Errorf("dead letter %d: %w", id, httpapi.ErrNoDeadLetter)
}

func (l *letters) take(verb, name string, id int64) ([]httpapi.DeadLetterJSON, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.calls = append(l.calls, fmt.Sprintf("%s %s %d", verb, name, id))
	if verb == "replay" && l.broken {
		return nil, fmt.Errorf("dead letter 1: column \"tricks\" does not exist: %w", httpapi.ErrReplayFailed)
	}
	var took, kept []httpapi.DeadLetterJSON
	for _, d := range l.all {
		if d.Projection == name && (id == 0 || d.ID == id) {
			took = append(took, d)
		} else {
			kept = append(kept, d)
		}
	}
	if id > 0 && len(took) == 0 {
		return nil, fmt.Errorf("dead letter %d of %q: %w", id, name, httpapi.ErrNoDeadLetter)
	}
	l.all = kept
	return took, nil
}

func (l *letters) Replay(_ context.Context, name string, id int64) ([]httpapi.DeadLetterJSON, error) {
	return l.take("replay", name, id)
}

func (l *letters) Purge(_ context.Context, name string, id int64) (int64, error) {
	took, err := l.take("purge", name, id)
	return int64(len(took)), err
}

func deadLetterServer(t *testing.T, token string) (*httptest.Server, *letters) {
	t.Helper()
	f := &fake{head: 500, statuses: []projection.Status{{Name: "dogs", State: projection.StateLive, Leader: true, Position: 500}}}
	at := time.Date(2026, 12, 3, 9, 0, 0, 0, time.UTC)
	l := &letters{}
	for i, data := range [][]byte{[]byte(`{"trick":"roll"}`), {0xff, 0}} {
		e := projection.Event{ID: fmt.Sprintf("e%d", i+1), Type: "TrickAdded", Stream: "rex", Position: tracking.Position{Commit: uint64(100 * (i + 1))},
			Data: data, Created: at}
		l.all = append(l.all, httpapi.NewDeadLetterJSON(int64(i+1), "dogs", e, "boom", at))
	}
	srv := httptest.NewServer(httpapi.New(httpapi.Options{Provider: f, Controller: &controller{f: f}, Waiter: &tracking.Watermark{}, AdminToken: token, DeadLetters: l}))
	t.Cleanup(srv.Close)
	return srv, l
}

func postBody(t *testing.T, url, token, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b strings.Builder
	_, _ = fmt.Fprint(&b, resp.StatusCode, " ")
	var raw json.RawMessage
	_ = json.NewDecoder(resp.Body).Decode(&raw)
	b.Write(raw)
	return resp.StatusCode, b.String()
}

// getWithToken GETs url with token as a bearer token (none when empty) into into.
func getWithToken(t *testing.T, url, token string, into any) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(into); err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return resp.StatusCode
}

func TestDeadLettersListAndShow(t *testing.T) {
	srv, _ := deadLetterServer(t, "tok")
	var list httpapi.DeadLettersJSON
	if code := getWithToken(t, srv.URL+"/v1/dead-letters?projection=dogs", "tok", &list); code != http.StatusOK || len(list.DeadLetters) != 2 {
		t.Fatalf("list = %d %+v", code, list)
	}
	if d := list.DeadLetters[0]; d.Data != `{"trick":"roll"}` || d.DataWithheld || d.Position != 100 || d.EventType != "TrickAdded" || d.Error != "boom" {
		t.Errorf("first dead letter = %+v", d)
	}
	if d := list.DeadLetters[1]; d.Data != "" || d.DataBase64 != "/wA=" {
		t.Errorf("binary data = %q / %q, want base64", d.Data, d.DataBase64)
	}
	var one httpapi.DeadLetterJSON
	if code := getWithToken(t, srv.URL+"/v1/dead-letters/2", "tok", &one); code != http.StatusOK || one.EventID != "e2" || one.DataBase64 != "/wA=" {
		t.Errorf("show 2 = %d %+v", code, one)
	}
	// Without the admin token (or with a wrong one) the events' data is withheld.
	for _, tok := range []string{"", "wrong"} {
		list, one = httpapi.DeadLettersJSON{}, httpapi.DeadLetterJSON{}
		getWithToken(t, srv.URL+"/v1/dead-letters", tok, &list)
		getWithToken(t, srv.URL+"/v1/dead-letters/1", tok, &one)
		for _, d := range append(list.DeadLetters, one) {
			if !d.DataWithheld || d.Data != "" || d.DataBase64 != "" || d.EventID == "" {
				t.Errorf("with token %q: %+v, want the data withheld and the rest shown", tok, d)
			}
		}
	}
	for url, want := range map[string]int{
		"/v1/dead-letters/9":               http.StatusNotFound,
		"/v1/dead-letters/x":               http.StatusBadRequest,
		"/v1/dead-letters?projection=cats": http.StatusNotFound,
	} {
		if code, body := get(t, srv.URL+url, nil); code != want {
			t.Errorf("GET %s = %d %s, want %d", url, code, body, want)
		}
	}
}

// Replay and purge are commands: closed without a daemon token (403), 401 with a wrong one,
// and nothing reaches the dead letters until the right one comes.
func TestDeadLetterCommandsRequireTheAdminToken(t *testing.T) {
	for _, verb := range []string{"replay", "purge"} {
		closed, l := deadLetterServer(t, "")
		url := closed.URL + "/v1/projections/dogs/dead-letters/" + verb
		if code, body := postBody(t, url, "anything", `{"all":true}`); code != http.StatusForbidden || !strings.Contains(body, "no admin token") {
			t.Errorf("%s without a daemon token = %s, want 403", verb, body)
		}
		open, l2 := deadLetterServer(t, "tok-9")
		url = open.URL + "/v1/projections/dogs/dead-letters/" + verb
		if code, body := postBody(t, url, "", `{"all":true}`); code != http.StatusUnauthorized {
			t.Errorf("%s without the token = %s, want 401", verb, body)
		}
		if code, body := postBody(t, url, "tok-8", `{"all":true}`); code != http.StatusUnauthorized || !strings.Contains(body, "wrong") {
			t.Errorf("%s with a wrong token = %s, want 401", verb, body)
		}
		if len(l.calls)+len(l2.calls) != 0 {
			t.Errorf("refused %s reached the dead letters: %v %v", verb, l.calls, l2.calls)
		}
		if code, body := postBody(t, url+"?id=2", "tok-9", ""); code != http.StatusOK || !strings.Contains(body, `"projection": "dogs"`) {
			t.Errorf("%s id 2 with the token = %s, want 200", verb, body)
		}
		if got := fmt.Sprint(l2.calls); got != "["+verb+" dogs 2]" {
			t.Errorf("calls = %s", got)
		}
	}
}

func TestDeadLetterReplayAndPurge(t *testing.T) {
	srv, l := deadLetterServer(t, "tok")
	base := srv.URL + "/v1/projections/dogs/dead-letters/"
	// Bad targets are refused before anything runs.
	for _, c := range []struct{ query, body string }{
		{"", ""}, {"?id=0", ""}, {"?id=x", ""}, {"?all=maybe", ""}, {"?id=1&all=true", ""}, {"?limit=3", ""},
		{"?id=1", `{"id":1}`}, {"", `{"id":-1}`}, {"", `{"every":true}`}, {"", `not json`},
	} {
		if code, body := postBody(t, base+"replay"+c.query, "tok", c.body); code != http.StatusBadRequest {
			t.Errorf("replay%s with body %q = %s, want 400", c.query, c.body, body)
		}
	}
	if len(l.calls) != 0 {
		t.Fatalf("bad targets reached the dead letters: %v", l.calls)
	}
	if code, body := postBody(t, srv.URL+"/v1/projections/cats/dead-letters/replay?all=true", "tok", ""); code != http.StatusNotFound {
		t.Errorf("replay of an unknown projection = %s, want 404", body)
	}
	// The handler still fails: 422 with its error; the dead letters stay.
	l.broken = true
	if code, body := postBody(t, base+"replay", "tok", `{"all":true}`); code != http.StatusUnprocessableEntity || !strings.Contains(body, `column \"tricks\" does not exist`) {
		t.Errorf("replay through a failing handler = %s, want 422 with its error", body)
	}
	l.broken = false
	var r httpapi.ReplayJSON
	code, body := postBody(t, base+"replay", "tok", `{"id":1}`)
	if code != http.StatusOK || json.Unmarshal([]byte(strings.TrimPrefix(body, "200 ")), &r) != nil || r.Replayed != 1 || r.DeadLetters[0].ID != 1 {
		t.Errorf("replay of 1 = %s", body)
	}
	if code, body := postBody(t, base+"replay?id=1", "tok", ""); code != http.StatusNotFound {
		t.Errorf("second replay of 1 = %s, want 404", body)
	}
	if code, body := postBody(t, base+"purge?all=true", "tok", ""); code != http.StatusOK || !strings.Contains(body, `"purged": 1`) {
		t.Errorf("purge all = %s, want 1 purged", body)
	}
	var list httpapi.DeadLettersJSON
	if code, body := get(t, srv.URL+"/v1/dead-letters", &list); code != http.StatusOK || len(list.DeadLetters) != 0 || !strings.Contains(body, `"dead_letters": []`) {
		t.Errorf("list after = %d %s, want an empty list", code, body)
	}
}

// Without a DeadLetters the endpoints answer 503.
func TestDeadLettersUnavailable(t *testing.T) {
	srv, _ := commandServer(t, "tok")
	if code, body := get(t, srv.URL+"/v1/dead-letters", nil); code != http.StatusServiceUnavailable {
		t.Errorf("list = %d %s, want 503", code, body)
	}
	if code, body := postBody(t, srv.URL+"/v1/projections/dogs/dead-letters/purge?all=true", "tok", ""); code != http.StatusServiceUnavailable {
		t.Errorf("purge = %s, want 503", body)
	}
}
