package httpapi

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/projector-dev/projector/internal/config"
	"github.com/projector-dev/projector/projection"
	"github.com/projector-dev/projector/tracking"
)

// commandFunc runs one command on projection name.
type commandFunc func(ctx context.Context, name string) error

// registerCommands registers every command of the API, each as POST
// /v1/projections/{name}/<verb>. Commands are registered here only, through handleCommand, so
// none can skip the checks that guard them.
func (a *api) registerCommands(mux *http.ServeMux) {
	ctl := a.o.Controller
	a.handleCommand(mux, "resume", a.statusCommand("resume", func(ctx context.Context, name string) error { return ctl.Resume(ctx, name) }))
	a.handleCommand(mux, "skip", a.statusCommand("skip", func(ctx context.Context, name string) error { return ctl.Skip(ctx, name) }))
	a.handleCommand(mux, "reset", a.statusCommand("reset", func(ctx context.Context, name string) error { return ctl.Reset(ctx, name) }))
	a.handleCommand(mux, "rebuild", a.statusCommand("rebuild", a.versionCommand("rebuild", Versioner.Rebuild)))
	a.handleCommand(mux, "rollback", a.statusCommand("rollback", a.versionCommand("rollback", Versioner.Rollback)))
	a.registerDeadLetterCommands(mux)
	a.registerParkedCommands(mux)
}

// handleCommand registers command verb on mux, as POST /v1/projections/{name}/<verb>, behind
// the guard: a request from a browser page of another origin is refused (403), every request
// while no admin token is set (403, saying how to set one), and a request without the admin
// token as a bearer token (401); only then does serve see it.
func (a *api) handleCommand(mux *http.ServeMux, verb string, serve http.HandlerFunc) {
	mux.HandleFunc("POST /v1/projections/{name}/"+verb, func(w http.ResponseWriter, r *http.Request) {
		name := r.PathValue("name")
		if err := a.origins.Check(r); err != nil {
			writeJSON(w, http.StatusForbidden, ErrorJSON{Error: fmt.Sprintf("%s %q: refused a request from a web page of another origin (%v): send commands with the projector CLI or an HTTP client, not from a browser", verb, name, err)})
			return
		}
		if a.tokenSum == nil {
			writeJSON(w, http.StatusForbidden, ErrorJSON{Error: fmt.Sprintf("%s %q: commands are disabled: this daemon has no admin token; to enable them, set %s (or %s, a file holding it) on the daemon and send it as Authorization: Bearer <token>", verb, name, config.EnvAdminToken, config.EnvAdminTokenFile)})
			return
		}
		if msg := a.unauthorized(r); msg != "" {
			w.Header().Set("WWW-Authenticate", `Bearer realm="projector"`)
			writeJSON(w, http.StatusUnauthorized, ErrorJSON{Error: fmt.Sprintf("%s %q: %s", verb, name, msg)})
			return
		}
		serve(w, r)
	})
}

// statusCommand serves an authorized command that run carries out, answering with the
// projection's status (see command).
func (a *api) statusCommand(verb string, run commandFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) { a.command(w, r, verb, run) }
}

// command runs an authorized command: 200 with the projection's status after the command, 404
// for an unknown projection, 409 when it is not stopped here (resume, skip) or not led here (a
// standby: the command belongs to the replica that leads it), 503 when the daemon is not
// running its projections.
func (a *api) command(w http.ResponseWriter, r *http.Request, verb string, run commandFunc) {
	name := r.PathValue("name")
	if len(r.URL.Query()) > 0 {
		writeJSON(w, http.StatusBadRequest, ErrorJSON{Error: fmt.Sprintf("%s takes no query parameters", verb)})
		return
	}
	if a.o.Controller == nil {
		writeJSON(w, http.StatusServiceUnavailable, ErrorJSON{Error: fmt.Sprintf("%s %q: this server takes no commands", verb, name)})
		return
	}
	err := run(r.Context(), name)
	switch {
	case err == nil:
	case errors.Is(err, tracking.ErrUnknownProjection):
		writeUnknown(w, name)
		return
	case errors.Is(err, projection.ErrNotStopped):
		msg := err.Error()
		if p, ok := a.find(name); ok && !p.Leader {
			msg = fmt.Sprintf("%s %q: this replica does not lead the projection (it is %s here): only the replica that leads it can have it stopped; send the command to that replica", verb, name, p.State)
		}
		writeJSON(w, http.StatusConflict, ErrorJSON{Error: msg})
		return
	case errors.Is(err, projection.ErrNotLeader):
		writeJSON(w, http.StatusConflict, ErrorJSON{Error: fmt.Sprintf("%s %q: this replica does not lead the projection; send the command to the replica that leads it (%v)", verb, name, err)})
		return
	case errors.Is(err, ErrRefused), errors.Is(err, projection.ErrPartitionedReset):
		writeJSON(w, http.StatusConflict, ErrorJSON{Error: err.Error()})
		return
	case errors.Is(err, ErrUnavailable):
		writeJSON(w, http.StatusServiceUnavailable, ErrorJSON{Error: err.Error()})
		return
	case r.Context().Err() != nil:
		return // the client went away
	default:
		writeJSON(w, http.StatusInternalServerError, ErrorJSON{Error: err.Error()})
		return
	}
	p, _ := a.find(name)
	writeJSON(w, http.StatusOK, p)
}

// setToken keeps the SHA-256 of the admin token; nothing without one.
func (a *api) setToken(token string) {
	if token != "" {
		sum := sha256.Sum256([]byte(token))
		a.tokenSum = sum[:]
	}
}

// unauthorized returns why r may not run a command, or "" when it carries the admin token in
// its Authorization header (the only place a token is taken from: never from the URL, which
// logs and browser histories keep).
func (a *api) unauthorized(r *http.Request) string {
	h := r.Header.Get("Authorization")
	if h == "" {
		return "this server requires the admin token: send the header Authorization: Bearer <token> (the daemon's " + config.EnvAdminToken + ")"
	}
	scheme, token, _ := strings.Cut(h, " ")
	if !strings.EqualFold(scheme, "Bearer") {
		return fmt.Sprintf("the Authorization header uses the %q scheme; send Authorization: Bearer <token> with the admin token", scheme)
	}
	if !a.tokenMatches(strings.TrimSpace(token)) {
		return "the admin token is wrong"
	}
	return ""
}

// tokenMatches compares token with the admin token in constant time: it compares their
// SHA-256 sums, so neither the content nor the length of the admin token shows in the time
// taken.
func (a *api) tokenMatches(token string) bool {
	sum := sha256.Sum256([]byte(token))
	return subtle.ConstantTimeCompare(sum[:], a.tokenSum) == 1
}
