// Parked streams (error policy park): GET /v1/parked[?projection=] and
// GET /v1/projections/{name}/parked list them; the commands POST
// /v1/projections/{name}/parked/resume and .../parked/skip act on one stream.

package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/projector-dev/projector/projection"
	"github.com/projector-dev/projector/tracking"
)

// Parked lists and acts on the parked streams of the daemon's projections. Its errors wrap
// tracking.ErrUnknownProjection for an unknown projection, projection.ErrNotParked for a
// stream that is not parked, projection.ErrStillFailing when a resumed stream fails again,
// projection.ErrNotLeader on a replica that does not lead the projection (the commands run in
// the worker of the replica that leads it), and ErrUnavailable while the daemon is not running
// its projections.
type Parked interface {
	// ParkedStreams returns the parked streams of projection name, oldest parking first.
	ParkedStreams(ctx context.Context, name string) ([]projection.ParkedStream, error)
	// ResumeStream replays the parked events of stream in order and unparks it; it returns
	// how many it replayed.
	ResumeStream(ctx context.Context, name, stream string) (int, error)
	// SkipStream moves the parked events of stream to the dead letters and unparks it; it
	// returns how many it moved.
	SkipStream(ctx context.Context, name, stream string) (int, error)
}

// ParkedStreamJSON is one parked stream in the API, with its first parked event (the one
// whose failure parked it).
type ParkedStreamJSON struct {
	Projection string    `json:"projection"`
	Stream     string    `json:"stream"`
	Events     int       `json:"events"`
	EventID    string    `json:"event_id"`
	EventType  string    `json:"event_type"`
	Revision   uint64    `json:"revision"`
	Position   uint64    `json:"position"`
	Prepare    uint64    `json:"prepare_position"`
	Error      string    `json:"error"`
	ParkedAt   time.Time `json:"parked_at"`
}

// ParkedJSON is the body of the parked-stream listings.
type ParkedJSON struct {
	Parked []ParkedStreamJSON `json:"parked"`
}

// ParkedCommandJSON is the body of a successful parked/resume or parked/skip: how many parked
// events were replayed, or moved to the dead letters.
type ParkedCommandJSON struct {
	Projection string `json:"projection"`
	Stream     string `json:"stream"`
	Resumed    int    `json:"resumed,omitempty"`
	Skipped    int    `json:"skipped,omitempty"`
}

func (a *api) registerParkedRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /v1/parked", func(w http.ResponseWriter, r *http.Request) {
		a.listParked(w, r, r.URL.Query().Get("projection"))
	})
	mux.HandleFunc("GET /v1/projections/{name}/parked", func(w http.ResponseWriter, r *http.Request) {
		a.listParked(w, r, r.PathValue("name"))
	})
}

// registerParkedCommands registers parked/resume and parked/skip through handleCommand (see
// registerCommands).
func (a *api) registerParkedCommands(mux *http.ServeMux) {
	a.handleCommand(mux, "parked/resume", a.parkedCommand("resume", func(ctx context.Context, name, stream string) (ParkedCommandJSON, error) {
		n, err := a.o.Parked.ResumeStream(ctx, name, stream)
		return ParkedCommandJSON{Projection: name, Stream: stream, Resumed: n}, err
	}))
	a.handleCommand(mux, "parked/skip", a.parkedCommand("skip", func(ctx context.Context, name, stream string) (ParkedCommandJSON, error) {
		n, err := a.o.Parked.SkipStream(ctx, name, stream)
		return ParkedCommandJSON{Projection: name, Stream: stream, Skipped: n}, err
	}))
}

// listParked answers the parked streams of projection name, or of every projection ("").
func (a *api) listParked(w http.ResponseWriter, r *http.Request, name string) {
	if a.o.Parked == nil {
		writeJSON(w, http.StatusServiceUnavailable, ErrorJSON{Error: "parked streams: this server parks none"})
		return
	}
	names := []string{name}
	if name == "" {
		names = names[:0]
		for _, s := range a.o.Provider.Statuses() {
			names = append(names, s.Name)
		}
	} else if !a.known(name) {
		writeUnknown(w, name)
		return
	}
	out := ParkedJSON{Parked: []ParkedStreamJSON{}}
	for _, n := range names {
		streams, err := a.o.Parked.ParkedStreams(r.Context(), n)
		if err != nil {
			a.parkedError(w, r, fmt.Sprintf("list the parked streams of %q", n), err)
			return
		}
		for _, s := range streams {
			e := s.First.Event
			out.Parked = append(out.Parked, ParkedStreamJSON{Projection: n, Stream: s.Stream, Events: s.Events, EventID: e.ID,
				EventType: e.Type, Revision: e.Revision, Position: e.Position.Commit, Prepare: e.Position.Prepare,
				Error: s.First.Error, ParkedAt: s.First.ParkedAt.UTC()})
		}
	}
	writeJSON(w, http.StatusOK, out)
}

// parkedCommand serves an authorized parked/resume or parked/skip: the stream is the query's
// stream=S, or a JSON body {"stream": S}.
func (a *api) parkedCommand(verb string, run func(ctx context.Context, name, stream string) (ParkedCommandJSON, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		name := r.PathValue("name")
		stream, err := streamTarget(r)
		if err != nil {
			writeJSON(w, http.StatusBadRequest, ErrorJSON{Error: fmt.Sprintf("%s a parked stream of %q: %v", verb, name, err)})
			return
		}
		what := fmt.Sprintf("%s the parked stream %q of %q", verb, stream, name)
		if a.o.Parked == nil {
			writeJSON(w, http.StatusServiceUnavailable, ErrorJSON{Error: what + ": this server parks no streams"})
			return
		}
		if !a.known(name) {
			writeUnknown(w, name)
			return
		}
		out, err := run(r.Context(), name, stream)
		if err != nil {
			a.parkedError(w, r, what, err)
			return
		}
		writeJSON(w, http.StatusOK, out)
	}
}

// streamTarget reads the stream a parked command is for: the query's stream=S or a body
// {"stream": S}.
func streamTarget(r *http.Request) (string, error) {
	q := r.URL.Query()
	for k := range q {
		if k != "stream" {
			return "", fmt.Errorf("unknown query parameter %q: give stream=S", k)
		}
	}
	stream := q.Get("stream")
	body, err := io.ReadAll(io.LimitReader(r.Body, 4<<10))
	if err != nil {
		return "", fmt.Errorf("read the body: %w", err)
	}
	if len(body) > 0 {
		if len(q) > 0 {
			return "", errors.New("give the stream in the query or in the body, not both")
		}
		var t struct {
			Stream string `json:"stream"`
		}
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&t); err != nil {
			return "", fmt.Errorf("body: want {\"stream\": S}: %w", err)
		}
		stream = t.Stream
	}
	if stream == "" {
		return "", errors.New("say which stream: stream=S (or a body {\"stream\": S})")
	}
	return stream, nil
}

// parkedError answers the error of a parked-stream operation what.
func (a *api) parkedError(w http.ResponseWriter, r *http.Request, what string, err error) {
	switch {
	case errors.Is(err, tracking.ErrUnknownProjection), errors.Is(err, projection.ErrNotParked):
		writeJSON(w, http.StatusNotFound, ErrorJSON{Error: fmt.Sprintf("%s: %v", what, err)})
	case errors.Is(err, projection.ErrStillFailing):
		writeJSON(w, http.StatusUnprocessableEntity, ErrorJSON{Error: fmt.Sprintf("%s: %v", what, err)})
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
