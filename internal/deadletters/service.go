// Package deadletters gives the daemon's HTTP API its dead-letter tools (httpapi.DeadLetters)
// over views/postgres: list, show and purge them, and replay them through the projections'
// current handlers under the lease of the projection this replica leads.
package deadletters

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/jackc/pgx/v5"

	"github.com/projector-dev/projector/internal/httpapi"
	"github.com/projector-dev/projector/projection"
	"github.com/projector-dev/projector/tracking"
	"github.com/projector-dev/projector/views/postgres"
)

// Service implements httpapi.DeadLetters. It answers with an error wrapping
// httpapi.ErrUnavailable until Connect.
type Service struct {
	mu          sync.Mutex
	store       *postgres.Store
	projections map[string]projection.Projection[pgx.Tx]
	leases      *Leases
}

var _ httpapi.DeadLetters = (*Service)(nil)

// New returns a Service that is not connected yet.
func New() *Service { return &Service{} }

// Connect makes s work on store, replaying through projections under leases (the Leader the
// runner uses).
func (s *Service) Connect(store *postgres.Store, projections []projection.Projection[pgx.Tx], leases *Leases) {
	byName := make(map[string]projection.Projection[pgx.Tx], len(projections))
	for _, p := range projections {
		byName[p.Name()] = p
	}
	s.mu.Lock()
	s.store, s.projections, s.leases = store, byName, leases
	s.mu.Unlock()
}

func (s *Service) connected(what string) (*postgres.Store, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.store == nil {
		return nil, fmt.Errorf("%s: still connecting to PostgreSQL: %w", what, httpapi.ErrUnavailable)
	}
	return s.store, nil
}

// List implements httpapi.DeadLetters.
func (s *Service) List(ctx context.Context, name string) ([]httpapi.DeadLetterJSON, error) {
	store, err := s.connected("list dead letters")
	if err != nil {
		return nil, err
	}
	var recs []postgres.DeadLetterRecord
	if name == "" {
		recs, err = postgres.ListAllDeadLetters(ctx, store.Pool(), 0)
	} else {
		recs, err = postgres.ListDeadLetters(ctx, store.Pool(), name, 0)
	}
	if err != nil {
		return nil, err
	}
	return toJSON(recs), nil
}

// Get implements httpapi.DeadLetters.
func (s *Service) Get(ctx context.Context, id int64) (httpapi.DeadLetterJSON, error) {
	store, err := s.connected(fmt.Sprintf("dead letter %d", id))
	if err != nil {
		return httpapi.DeadLetterJSON{}, err
	}
	r, err := postgres.GetDeadLetter(ctx, store.Pool(), id)
	if err != nil {
		return httpapi.DeadLetterJSON{}, classify(err)
	}
	return toJSON([]postgres.DeadLetterRecord{r})[0], nil
}

// Replay implements httpapi.DeadLetters: on the replica that leads the projection, under its
// lease, it re-applies the dead letters through the projection's current handlers and removes
// them in one transaction (see postgres.Store.ReplayDeadLetters).
func (s *Service) Replay(ctx context.Context, name string, id int64) ([]httpapi.DeadLetterJSON, error) {
	what := fmt.Sprintf("replay the dead letters of %q", name)
	store, err := s.connected(what)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	p, ok := s.projections[name]
	leases := s.leases
	s.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("%s: %w", what, tracking.ErrUnknownProjection)
	}
	lead, ok := leases.Lease(name)
	if !ok {
		return nil, fmt.Errorf("%s: %w", what, projection.ErrNotLeader)
	}
	// The replay carries the lease and ends with the request or the lease.
	rctx, cancel := context.WithCancel(lead)
	defer cancel()
	defer context.AfterFunc(ctx, cancel)()
	recs, err := store.ReplayDeadLetters(rctx, p, id)
	if err != nil {
		if lead.Err() != nil {
			return nil, fmt.Errorf("%s: %w: %w", what, projection.ErrNotLeader, err)
		}
		return nil, classify(err)
	}
	return toJSON(recs), nil
}

// Purge implements httpapi.DeadLetters.
func (s *Service) Purge(ctx context.Context, name string, id int64) (int64, error) {
	store, err := s.connected(fmt.Sprintf("purge the dead letters of %q", name))
	if err != nil {
		return 0, err
	}
	n, err := postgres.PurgeDeadLetters(ctx, store.Pool(), name, id)
	if err != nil {
		return 0, classify(err)
	}
	return n, nil
}

// Count counts the dead letters of each projection (the projector_dead_letters gauge).
func (s *Service) Count(ctx context.Context) (map[string]int64, error) {
	store, err := s.connected("count dead letters")
	if err != nil {
		return nil, err
	}
	return postgres.CountDeadLetters(ctx, store.Pool())
}

// classify makes the store's errors also wrap the API's.
func classify(err error) error {
	switch {
	case errors.Is(err, postgres.ErrNoDeadLetter):
		return apiError{api: httpapi.ErrNoDeadLetter, err: err}
	case errors.Is(err, postgres.ErrReplayFailed):
		return apiError{api: httpapi.ErrReplayFailed, err: err}
	case errors.Is(err, postgres.ErrLeaderActive):
		return apiError{api: projection.ErrNotLeader, err: err}
	}
	return err
}

// apiError is err, which also wraps api; its message is err's.
type apiError struct{ api, err error }

func (e apiError) Error() string   { return e.err.Error() }
func (e apiError) Unwrap() []error { return []error{e.api, e.err} }

func toJSON(recs []postgres.DeadLetterRecord) []httpapi.DeadLetterJSON {
	out := make([]httpapi.DeadLetterJSON, len(recs))
	for i, r := range recs {
		out[i] = httpapi.NewDeadLetterJSON(r.ID, r.Projection, r.Event, r.Error, r.FailedAt)
	}
	return out
}
