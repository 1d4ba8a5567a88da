// Package httpapi serves Projector's HTTP interface: the status page at /, /metrics,
// /healthz, /readyz, /v1/projections, /v1/projections/{name}/wait, /v1/history,
// /v1/dead-letters, /v1/parked, and the operator's commands POST /v1/projections/{name}/resume,
// .../skip, .../reset, .../dead-letters/replay, .../dead-letters/purge, .../parked/resume and
// .../parked/skip. The commands are closed by
// default: without an admin token they are refused; with one they require it as a bearer
// token, and requests from browser pages of another origin are refused. The read endpoints
// stay open.
package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/projector-dev/projector/internal/tracing"
	"github.com/projector-dev/projector/projection"
	"github.com/projector-dev/projector/tracking"
)

// Provider gives the daemon's current state.
type Provider interface {
	// Statuses returns the status of every configured projection.
	Statuses() []projection.Status
	// Head returns the last known commit position of the end of $all; ok is false until known.
	Head() (position uint64, ok bool)
	// HeadRead returns when the head was last read successfully (zero until it is): the head
	// is kept while KurrentDB cannot be read, and grows old.
	HeadRead() time.Time
	// Connected returns nil when the daemon's connections (KurrentDB, PostgreSQL) are up, or an
	// error saying which is not.
	Connected(ctx context.Context) error
}

// Controller takes the operator's commands to the projections (the daemon's runner). Each
// returns an error wrapping tracking.ErrUnknownProjection for an unknown name, and
// ErrUnavailable while the daemon is not running its projections (still connecting, or
// shutting down).
type Controller interface {
	// Resume retries the event the projection is stopped on. Skip goes on past it (writing it to
	// the dead letters). Both return an error wrapping projection.ErrNotStopped when the
	// projection is not stopped in this process.
	Resume(ctx context.Context, name string) error
	Skip(ctx context.Context, name string) error
	// Reset rebuilds a projection online: it empties its view and rewinds it to its start, on
	// the replica that leads it; it returns an error wrapping projection.ErrNotLeader on a
	// standby.
	Reset(ctx context.Context, name string) error
}

// ErrUnavailable is wrapped by a Controller's errors while it cannot take commands (the daemon
// is still connecting, or shutting down); the API answers 503.
var ErrUnavailable = errors.New("the daemon is not running its projections")

// Options configure the handler.
type Options struct {
	Provider Provider
	// Controller takes the resume, skip and reset commands; nil answers them 503.
	Controller Controller
	// AdminToken, when set, is the shared secret the commands require as
	// "Authorization: Bearer <token>" (compared in constant time); they answer 401 without it.
	// Empty disables the commands: they answer 403, saying how to set a token.
	AdminToken string
	// Waiter answers wait requests; on a standby it must read the shared store (PostgreSQL).
	Waiter tracking.Waiter
	// Metrics serves /metrics; nil for none.
	Metrics http.Handler
	// ObserveWait, when set, is told how long each wait request took.
	ObserveWait func(projection string, d time.Duration)
	// DefaultWait is the wait timeout when the request gives none (default 5s).
	DefaultWait time.Duration
	// MaxWait caps the wait timeout a request may ask for (default 5m).
	MaxWait time.Duration
	// MaxWaits caps the wait requests served at once: beyond it they answer 503 with
	// Retry-After. Zero means no cap.
	MaxWaits int
	// Stall is how long a catching-up projection with events pending may go without a commit
	// before /readyz reports it stalled (default 1m).
	Stall time.Duration
	// Now returns the current time (default time.Now).
	Now func() time.Time
	// DeadLetters lists, shows, replays and purges the dead letters; nil answers them 503.
	DeadLetters DeadLetters
	// Parked lists the parked streams and takes the parked/resume and parked/skip commands;
	// nil answers them 503.
	Parked Parked
	// History feeds the status page's charts (GET /v1/history); nil for none.
	History *History
	// Tracing makes a span per wait request, continuing the caller's W3C trace context; nil
	// means tracing.Off.
	Tracing *tracing.Tracing
}

type api struct {
	o Options
	// tokenSum is the SHA-256 of the admin token; nil when there is none.
	tokenSum []byte
	// origins refuses commands sent by browser pages of another origin.
	origins *http.CrossOriginProtection
	// waits holds a token per wait request in progress; nil without a cap.
	waits chan struct{}
}

// New returns the HTTP handler.
func New(o Options) http.Handler {
	if o.DefaultWait <= 0 {
		o.DefaultWait = 5 * time.Second
	}
	if o.MaxWait <= 0 {
		o.MaxWait = 5 * time.Minute
	}
	if o.Stall <= 0 {
		o.Stall = time.Minute
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Tracing == nil {
		o.Tracing = tracing.Off()
	}
	a := &api{o: o, origins: http.NewCrossOriginProtection()}
	a.setToken(o.AdminToken)
	if o.MaxWaits > 0 {
		a.waits = make(chan struct{}, o.MaxWaits)
	}
	mux := http.NewServeMux()
	if o.Metrics != nil {
		mux.Handle("GET /metrics", o.Metrics)
	}
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", a.readyz)
	mux.HandleFunc("GET /v1/projections", a.projections)
	mux.HandleFunc("GET /v1/projections/{name}", a.projection)
	mux.HandleFunc("GET /v1/projections/{name}/wait", a.wait)
	mux.HandleFunc("GET /v1/history", a.history)
	a.registerDeadLetterRoutes(mux)
	a.registerParkedRoutes(mux)
	a.registerPage(mux)
	a.registerCommands(mux)
	return o.Tracing.Handler(mux)
}

// ProjectionJSON is one projection in /v1/projections.
type ProjectionJSON struct {
	Name         string              `json:"name"`
	Position     uint64              `json:"position"`
	Head         *uint64             `json:"head"`
	HeadAge      *float64            `json:"head_age_seconds,omitempty"`
	Lag          *uint64             `json:"lag"`
	LagSeconds   float64             `json:"lag_seconds"`
	State        projection.RunState `json:"state"`
	Leader       bool                `json:"leader"`
	LeaderMember string              `json:"leader_member,omitempty"` // the id of the replica that leads it, when known
	CaughtUp     bool                `json:"caught_up"`
	Tracking     tracking.State      `json:"tracking"`
	LastProgress *time.Time          `json:"last_progress,omitempty"`
	Failed       *projection.Failure `json:"failed,omitempty"`
	// Error is the error that made the projection retrying or stopped; empty otherwise.
	Error string `json:"error,omitempty"`
	// Rebuild is the progress of a new version building, on the replica that builds it.
	Rebuild *RebuildJSON `json:"rebuild,omitempty"`
	// ParkedStreams is the number of streams the projection has parked (error policy park),
	// on the replica that leads it; GET /v1/projections/{name}/parked lists them.
	ParkedStreams int `json:"parked_streams"`
	// Partitions are a partitioned projection's partitions (named NAME#i), each as a
	// projection of its own; the projection's position is the lowest of theirs.
	Partitions []ProjectionJSON `json:"partitions,omitempty"`
}

// ListJSON is the body of /v1/projections.
type ListJSON struct {
	Head *uint64 `json:"head"`
	// HeadAge is how long ago the head was read (seconds): it grows while KurrentDB cannot be
	// read, and the head, lag and lag_seconds are that old. Absent until the head is known.
	HeadAge     *float64         `json:"head_age_seconds,omitempty"`
	Projections []ProjectionJSON `json:"projections"`
}

// WaitJSON is the body of a wait response.
type WaitJSON struct {
	Projection string `json:"projection"`
	// Requested is the position asked for.
	Requested uint64 `json:"requested"`
	// Position is the position the projection has reached (processed through).
	Position uint64 `json:"position"`
	// Done tells whether Requested has been processed.
	Done  bool   `json:"done"`
	Error string `json:"error,omitempty"`
}

// ErrorJSON is the body of an error response.
type ErrorJSON struct {
	Error string `json:"error"`
}

func (a *api) list() ListJSON {
	head, ok := a.o.Provider.Head()
	now := a.o.Now()
	out := ListJSON{Projections: []ProjectionJSON{}}
	var age *float64
	if ok {
		out.Head = &head
		if read := a.o.Provider.HeadRead(); !read.IsZero() {
			secs := max(now.Sub(read), 0).Seconds()
			age = &secs
		}
	}
	out.HeadAge = age
	var rebuilds map[string]RebuildJSON
	if rr, ok := a.o.Provider.(RebuildReporter); ok {
		rebuilds = rr.Rebuilds()
	}
	for _, s := range a.o.Provider.Statuses() {
		p := toJSON(s, head, ok, now)
		if r, ok := rebuilds[s.Name]; ok {
			p.Rebuild = &r
		}
		if age != nil {
			v := *age
			p.HeadAge = &v
		}
		out.Projections = append(out.Projections, p)
	}
	return out
}

func toJSON(s projection.Status, head uint64, haveHead bool, now time.Time) ProjectionJSON {
	lag := s.Lag(head, haveHead, now)
	p := ProjectionJSON{
		Name: s.Name, Position: s.Position, LagSeconds: lag.Seconds, State: s.State,
		Leader: s.Leader, LeaderMember: s.LeaderMember, CaughtUp: s.CaughtUp, Tracking: s.Tracking, Failed: s.Failed, Error: s.Error, ParkedStreams: s.ParkedStreams,
	}
	if haveHead {
		h, l := head, lag.Positions
		p.Head, p.Lag = &h, &l
	}
	if !s.LastProgress.IsZero() {
		t := s.LastProgress.UTC()
		p.LastProgress = &t
	}
	for _, part := range s.Partitions {
		p.Partitions = append(p.Partitions, toJSON(part, head, haveHead, now))
	}
	return p
}

func (a *api) projections(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, a.list())
}

func (a *api) projection(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if p, ok := a.find(name); ok {
		writeJSON(w, http.StatusOK, p)
		return
	}
	writeUnknown(w, name)
}

// find returns the JSON status of projection name.
func (a *api) find(name string) (ProjectionJSON, bool) {
	for _, p := range a.list().Projections {
		if p.Name == name {
			return p, true
		}
	}
	return ProjectionJSON{}, false
}

func (a *api) known(name string) bool {
	for _, s := range a.o.Provider.Statuses() {
		if s.Name == name {
			return true
		}
	}
	return false
}

func (a *api) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	var reasons []string
	if err := a.o.Provider.Connected(ctx); err != nil {
		reasons = append(reasons, "not connected: "+err.Error())
	}
	now := a.o.Now()
	for _, s := range a.o.Provider.Statuses() {
		if isVersionBuild(s.Name) {
			continue
		}
		if reason := notReady(s, now, a.o.Stall); reason != "" {
			reasons = append(reasons, fmt.Sprintf("projection %s: %s", s.Name, reason))
		}
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if len(reasons) > 0 {
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte(strings.Join(reasons, "\n") + "\n"))
		return
	}
	_, _ = w.Write([]byte("ready\n"))
}

// notReady returns why s keeps the instance from being ready, or "".
func notReady(s projection.Status, now time.Time, stall time.Duration) string {
	switch s.State {
	case projection.StateStandby:
		return ""
	case projection.StateLive:
		return ""
	case projection.StateCatchingUp:
		if s.CaughtUp || s.OldestPending.IsZero() {
			return ""
		}
		since := s.OldestPending
		if s.LastProgress.After(since) {
			since = s.LastProgress
		}
		if now.Sub(since) > stall {
			return fmt.Sprintf("catching up but no commit for %s", now.Sub(since).Round(time.Second))
		}
		return ""
	case projection.StateStopped:
		if s.Failed != nil {
			return fmt.Sprintf("stopped on event %s (type %q, position %d): %s", s.Failed.EventID, s.Failed.Type, s.Failed.Position.Commit, s.Failed.Error)
		}
		if s.Error != "" {
			return "stopped: " + s.Error
		}
		return "stopped"
	default:
		if s.Error != "" {
			return fmt.Sprintf("%s: %s", s.State, s.Error)
		}
		return string(s.State)
	}
}

// writeUnknown answers 404 for name, a projection this server does not know.
func writeUnknown(w http.ResponseWriter, name string) {
	writeJSON(w, http.StatusNotFound, ErrorJSON{Error: fmt.Sprintf("unknown projection %q", name)})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false) // the body is JSON, read by people too: keep <, > and & as they are
	_ = enc.Encode(v)
}
