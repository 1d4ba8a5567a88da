package httpapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/projector-dev/projector/internal/tracing"
	"github.com/projector-dev/projector/tracking"
)

// waitWriteSlack is how long past its wait timeout a wait request may take to write its
// answer: the server's write timeout is extended to the wait's timeout plus this.
const waitWriteSlack = 10 * time.Second

// waitRetryAfter is the Retry-After (seconds) of a wait refused because MaxWaits are in
// progress.
const waitRetryAfter = 1

// wait handles GET /v1/projections/{name}/wait?position=P&timeout=D: 200 once the projection
// has processed P, 504 with the position reached when D passes, 503 with Retry-After when
// MaxWaits waits are in progress already.
func (a *api) wait(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	name := r.PathValue("name")
	if !a.known(name) {
		writeUnknown(w, name)
		return
	}
	q := r.URL.Query()
	ps := q.Get("position")
	if ps == "" {
		writeJSON(w, http.StatusBadRequest, ErrorJSON{Error: "missing query parameter position (a commit position)"})
		return
	}
	pos, err := strconv.ParseUint(ps, 10, 64)
	if err != nil {
		writeJSON(w, http.StatusBadRequest, ErrorJSON{Error: fmt.Sprintf("position %q is not a commit position (a whole number)", ps)})
		return
	}
	timeout := a.o.DefaultWait
	if ts := q.Get("timeout"); ts != "" {
		timeout, err = time.ParseDuration(ts)
		if err != nil || timeout <= 0 {
			writeJSON(w, http.StatusBadRequest, ErrorJSON{Error: fmt.Sprintf("timeout %q is not a positive duration such as 500ms or 5s", ts)})
			return
		}
		if timeout > a.o.MaxWait {
			writeJSON(w, http.StatusBadRequest, ErrorJSON{Error: fmt.Sprintf("timeout %s is longer than the maximum %s", timeout, a.o.MaxWait)})
			return
		}
	}
	for k := range q {
		if k != "position" && k != "timeout" {
			writeJSON(w, http.StatusBadRequest, ErrorJSON{Error: fmt.Sprintf("unknown query parameter %q; use position and timeout", k)})
			return
		}
	}
	ctx, span := a.o.Tracing.StartWait(r.Context(), name, pos, timeout)
	if !a.startWait() {
		span.End(tracing.WaitRefused, tracking.State{}, nil)
		w.Header().Set("Retry-After", strconv.Itoa(waitRetryAfter))
		writeJSON(w, http.StatusServiceUnavailable, ErrorJSON{Error: fmt.Sprintf("wait for %q refused: %d waits are in progress, the most this server takes at once; retry after %ds", name, a.o.MaxWaits, waitRetryAfter)})
		return
	}
	defer a.endWait()
	// The server's write timeout is shorter than the longest wait: extend it for this answer.
	// (A ResponseWriter that cannot, such as a test recorder, has no deadline to extend.)
	_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(timeout + waitWriteSlack))
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	s, err := a.o.Waiter.Wait(ctx, name, pos)
	outcome := tracing.WaitFailed
	defer func() { span.End(outcome, s, err) }()
	if a.o.ObserveWait != nil {
		a.o.ObserveWait(name, time.Since(start))
	}
	body := WaitJSON{Projection: name, Requested: pos, Position: s.Reached(), Done: err == nil && s.Done(pos)}
	switch {
	case err == nil:
		outcome = tracing.WaitDone
		writeJSON(w, http.StatusOK, body)
	case errors.Is(err, context.DeadlineExceeded) && r.Context().Err() == nil:
		outcome = tracing.WaitTimeout
		body.Error = fmt.Sprintf("timed out after %s", timeout)
		writeJSON(w, http.StatusGatewayTimeout, body)
	case r.Context().Err() != nil:
		// The client went away; nobody reads the answer.
		outcome = tracing.WaitCancelled
	case errors.Is(err, tracking.ErrUnknownProjection):
		writeJSON(w, http.StatusNotFound, ErrorJSON{Error: err.Error()})
	default:
		body.Error = err.Error()
		writeJSON(w, http.StatusServiceUnavailable, body)
	}
}

// startWait takes a place among the MaxWaits waits, reporting false when none is free.
func (a *api) startWait() bool {
	if a.waits == nil {
		return true
	}
	select {
	case a.waits <- struct{}{}:
		return true
	default:
		return false
	}
}

// endWait gives back the place startWait took.
func (a *api) endWait() {
	if a.waits != nil {
		<-a.waits
	}
}
