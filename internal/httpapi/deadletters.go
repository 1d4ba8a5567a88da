// Dead letters: GET /v1/dead-letters[?projection=], GET /v1/dead-letters/{id} (the events'
// data and metadata only for a request with the admin token), and the commands
// POST /v1/projections/{name}/dead-letters/replay and .../dead-letters/purge.

package httpapi

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/projector-dev/projector/projection"
	"github.com/projector-dev/projector/tracking"
)

// DeadLetters reads and acts on the dead letters of the daemon's projections (events skipped
// under the skip error policy). Its errors wrap ErrNoDeadLetter for a dead letter that does not
// exist, ErrReplayFailed when the handler still fails on one, tracking.ErrUnknownProjection for
// an unknown projection, projection.ErrNotLeader when this replica does not lead the projection
// (a replay runs under the lease of the replica that leads it) and ErrUnavailable while the
// daemon is not connected to its store.
type DeadLetters interface {
	// List returns the dead letters of projection ("" for every projection) in log order.
	List(ctx context.Context, projection string) ([]DeadLetterJSON, error)
	// Get returns dead letter id.
	Get(ctx context.Context, id int64) (DeadLetterJSON, error)
	// Replay re-applies the dead letter id of projection (every one when id is 0) through the
	// projection's current handlers and removes it, in one transaction, and returns them.
	Replay(ctx context.Context, projection string, id int64) ([]DeadLetterJSON, error)
	// Purge deletes the dead letter id of projection (every one when id is 0) and says how
	// many it deleted.
	Purge(ctx context.Context, projection string, id int64) (int64, error)
}

// ErrNoDeadLetter is wrapped by a DeadLetters error for a dead letter that does not exist; the
// API answers 404.
var ErrNoDeadLetter = errors.New("no such dead letter")

// ErrReplayFailed is wrapped by DeadLetters.Replay's error when the projection's handler still
// fails: the dead letters stay in place and the API answers 422 with the error.
var ErrReplayFailed = errors.New("the handler failed on the dead letter")

// DeadLetterJSON is one dead letter in the API.
type DeadLetterJSON struct {
	ID          int64     `json:"id"`
	Projection  string    `json:"projection"`
	EventID     string    `json:"event_id"`
	EventType   string    `json:"event_type"`
	Stream      string    `json:"stream"`
	Revision    uint64    `json:"revision"`
	Position    uint64    `json:"position"`
	Prepare     uint64    `json:"prepare_position"`
	ContentType string    `json:"content_type"`
	Created     time.Time `json:"created"`
	// Data is the event's data when it is UTF-8 text; DataBase64 holds it otherwise.
	Data       string `json:"data,omitempty"`
	DataBase64 string `json:"data_base64,omitempty"`
	// Metadata is the event's metadata when it is UTF-8 text; MetadataBase64 otherwise.
	Metadata       string `json:"metadata,omitempty"`
	MetadataBase64 string `json:"metadata_base64,omitempty"`
	// DataWithheld says the event's data and metadata were left out: the read endpoints show
	// them only to a request that carries the admin token.
	DataWithheld bool      `json:"data_withheld,omitempty"`
	Error        string    `json:"error"`
	FailedAt     time.Time `json:"failed_at"`
}

// withhold leaves out the event's data and metadata.
func (d *DeadLetterJSON) withhold() {
	d.Data, d.DataBase64, d.Metadata, d.MetadataBase64 = "", "", "", ""
	d.DataWithheld = true
}

// showsData tells whether r may see the events' data: it carries the admin token.
func (a *api) showsData(r *http.Request) bool {
	return a.tokenSum != nil && a.unauthorized(r) == ""
}

// NewDeadLetterJSON returns the API's form of dead letter id of projectionName: event e, which
// failed at failedAt with errText.
func NewDeadLetterJSON(id int64, projectionName string, e projection.Event, errText string, failedAt time.Time) DeadLetterJSON {
	d := DeadLetterJSON{ID: id, Projection: projectionName, EventID: e.ID, EventType: e.Type, Stream: e.Stream,
		Revision: e.Revision, Position: e.Position.Commit, Prepare: e.Position.Prepare, ContentType: e.ContentType,
		Created: e.Created.UTC(), Error: errText, FailedAt: failedAt.UTC()}
	d.Data, d.DataBase64 = textOrBase64(e.Data)
	d.Metadata, d.MetadataBase64 = textOrBase64(e.Metadata)
	return d
}

func textOrBase64(b []byte) (text, b64 string) {
	if utf8.Valid(b) {
		return string(b), ""
	}
	return "", base64.StdEncoding.EncodeToString(b)
}

// DeadLettersJSON is the body of GET /v1/dead-letters.
type DeadLettersJSON struct {
	DeadLetters []DeadLetterJSON `json:"dead_letters"`
}

// ReplayJSON is the body of a successful replay.
type ReplayJSON struct {
	Projection  string           `json:"projection"`
	Replayed    int              `json:"replayed"`
	DeadLetters []DeadLetterJSON `json:"dead_letters"`
}

// PurgeJSON is the body of a successful purge.
type PurgeJSON struct {
	Projection string `json:"projection"`
	Purged     int64  `json:"purged"`
}

// deadLetterTarget is the body of a replay or purge: one dead letter's id, or all.
type deadLetterTarget struct {
	ID  int64 `json:"id"`
	All bool  `json:"all"`
}

func (a *api) registerDeadLetterRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /v1/dead-letters", a.listDeadLetters)
	mux.HandleFunc("GET /v1/dead-letters/{id}", a.getDeadLetter)
}

// registerDeadLetterCommands registers replay and purge through handleCommand (see
// registerCommands).
func (a *api) registerDeadLetterCommands(mux *http.ServeMux) {
	a.handleCommand(mux, "dead-letters/replay", a.deadLetterCommand("replay", func(ctx context.Context, name string, id int64) (any, error) {
		done, err := a.o.DeadLetters.Replay(ctx, name, id)
		if done == nil {
			done = []DeadLetterJSON{}
		}
		return ReplayJSON{Projection: name, Replayed: len(done), DeadLetters: done}, err
	}))
	a.handleCommand(mux, "dead-letters/purge", a.deadLetterCommand("purge", func(ctx context.Context, name string, id int64) (any, error) {
		n, err := a.o.DeadLetters.Purge(ctx, name, id)
		return PurgeJSON{Projection: name, Purged: n}, err
	}))
}

func (a *api) listDeadLetters(w http.ResponseWriter, r *http.Request) {
	if a.o.DeadLetters == nil {
		writeJSON(w, http.StatusServiceUnavailable, ErrorJSON{Error: "dead letters: this server keeps none"})
		return
	}
	name := r.URL.Query().Get("projection")
	if name != "" && !a.known(name) {
		writeUnknown(w, name)
		return
	}
	list, err := a.o.DeadLetters.List(r.Context(), name)
	if err != nil {
		a.deadLetterError(w, r, "list dead letters", err)
		return
	}
	if list == nil {
		list = []DeadLetterJSON{}
	}
	if !a.showsData(r) {
		for i := range list {
			list[i].withhold()
		}
	}
	writeJSON(w, http.StatusOK, DeadLettersJSON{DeadLetters: list})
}

func (a *api) getDeadLetter(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id <= 0 {
		writeJSON(w, http.StatusBadRequest, ErrorJSON{Error: fmt.Sprintf("dead letter id %q: want a positive integer", r.PathValue("id"))})
		return
	}
	if a.o.DeadLetters == nil {
		writeJSON(w, http.StatusServiceUnavailable, ErrorJSON{Error: "dead letters: this server keeps none"})
		return
	}
	d, err := a.o.DeadLetters.Get(r.Context(), id)
	if err != nil {
		a.deadLetterError(w, r, fmt.Sprintf("dead letter %d", id), err)
		return
	}
	if !a.showsData(r) {
		d.withhold()
	}
	writeJSON(w, http.StatusOK, d)
}

// deadLetterCommand serves an authorized replay or purge: the target is the query's id=N or
// all=true, or a JSON body {"id": N} or {"all": true}.
func (a *api) deadLetterCommand(verb string, run func(ctx context.Context, name string, id int64) (any, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		name := r.PathValue("name")
		what := fmt.Sprintf("%s the dead letters of %q", verb, name)
		id, err := target(r)
		if err != nil {
			writeJSON(w, http.StatusBadRequest, ErrorJSON{Error: fmt.Sprintf("%s: %v", what, err)})
			return
		}
		if a.o.DeadLetters == nil {
			writeJSON(w, http.StatusServiceUnavailable, ErrorJSON{Error: what + ": this server keeps no dead letters"})
			return
		}
		if !a.known(name) {
			writeUnknown(w, name)
			return
		}
		out, err := run(r.Context(), name, id)
		if err != nil {
			a.deadLetterError(w, r, what, err)
			return
		}
		writeJSON(w, http.StatusOK, out)
	}
}

// target reads which dead letters a replay or purge is for: id > 0, or 0 for all.
func target(r *http.Request) (int64, error) {
	var t deadLetterTarget
	q := r.URL.Query()
	for k := range q {
		if k != "id" && k != "all" {
			return 0, fmt.Errorf("unknown query parameter %q: give id=N or all=true", k)
		}
	}
	if v := q.Get("id"); v != "" {
		id, err := strconv.ParseInt(v, 10, 64)
		if err != nil || id <= 0 {
			return 0, fmt.Errorf("id %q: want a positive integer", v)
		}
		t.ID = id
	}
	if v := q.Get("all"); v != "" {
		all, err := strconv.ParseBool(v)
		if err != nil {
			return 0, fmt.Errorf("all %q: want true or false", v)
		}
		t.All = all
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 4<<10))
	if err != nil {
		return 0, fmt.Errorf("read the body: %w", err)
	}
	if len(body) > 0 {
		if len(q) > 0 {
			return 0, errors.New("give the target in the query or in the body, not both")
		}
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&t); err != nil {
			return 0, fmt.Errorf("body: want {\"id\": N} or {\"all\": true}: %w", err)
		}
		if t.ID < 0 {
			return 0, fmt.Errorf("body: id %d: want a positive integer", t.ID)
		}
	}
	switch {
	case t.ID > 0 && t.All:
		return 0, errors.New("give either an id or all, not both")
	case t.ID > 0:
		return t.ID, nil
	case t.All:
		return 0, nil
	}
	return 0, errors.New("say which dead letters: id=N or all=true (or a body {\"id\": N} or {\"all\": true})")
}

// deadLetterError answers the error of a dead-letter operation what.
func (a *api) deadLetterError(w http.ResponseWriter, r *http.Request, what string, err error) {
	switch {
	case errors.Is(err, ErrNoDeadLetter):
		writeJSON(w, http.StatusNotFound, ErrorJSON{Error: fmt.Sprintf("%s: %v", what, err)})
	case errors.Is(err, tracking.ErrUnknownProjection):
		writeJSON(w, http.StatusNotFound, ErrorJSON{Error: fmt.Sprintf("%s: %v", what, err)})
	case errors.Is(err, ErrReplayFailed):
		writeJSON(w, http.StatusUnprocessableEntity, ErrorJSON{Error: fmt.Sprintf("%s: the dead letters stay in place: %v", what, err)})
	case errors.Is(err, projection.ErrNotLeader), errors.Is(err, projection.ErrLeadershipLost):
		writeJSON(w, http.StatusConflict, ErrorJSON{Error: fmt.Sprintf("%s: this replica does not lead the projection; send the command to the replica that leads it (%v)", what, err)})
	case errors.Is(err, ErrUnavailable):
		writeJSON(w, http.StatusServiceUnavailable, ErrorJSON{Error: fmt.Sprintf("%s: %v", what, err)})
	case r.Context().Err() != nil:
		// the client went away
	default:
		writeJSON(w, http.StatusInternalServerError, ErrorJSON{Error: fmt.Sprintf("%s: %v", what, err)})
	}
}
