package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/projector-dev/projector/internal/loopback"
)

// Daemon is a running `projector run` and the base URL of its HTTP API.
type Daemon struct {
	Proc *Proc
	Base string
	http *http.Client
}

// StartDaemon runs `projector run --no-migrate` on configFile against dbURL and the KurrentDB
// at kurrentURI, its HTTP API on a free loopback port.
func StartDaemon(bins Binaries, configFile, dbURL, kurrentURI string) (*Daemon, error) {
	addr, err := loopback.FreeAddr()
	if err != nil {
		return nil, err
	}
	dbURL, err = bins.daemonURL(dbURL)
	if err != nil {
		return nil, err
	}
	env := Env(append([]string{"DATABASE_URL=" + dbURL, "KURRENTDB_URI=" + kurrentURI, "PROJECTOR_HTTP_ADDR=" + addr, "PROJECTOR_LOG_LEVEL=warn"}, bins.DaemonEnv...)...)
	p, err := Start("projector run", bins.Projector, env, "run", "--no-migrate", "--config", configFile)
	if err != nil {
		return nil, err
	}
	return &Daemon{Proc: p, Base: "http://" + addr, http: &http.Client{Timeout: 30 * time.Second}}, nil
}

// Migrate runs `projector migrate` on configFile against dbURL: Projector's tables and every
// projection's schema.
func Migrate(ctx context.Context, bins Binaries, configFile, dbURL string) error {
	p, err := Start("projector migrate", bins.Projector, Env("DATABASE_URL="+dbURL, "PROJECTOR_LOG_LEVEL=warn"), "migrate", "--config", configFile)
	if err != nil {
		return err
	}
	select {
	case <-p.done:
	case <-ctx.Done():
		p.Kill()
		return ctx.Err()
	}
	if p.err != nil {
		return fmt.Errorf("projector migrate: %w\n%s", p.err, p.Tail(4000))
	}
	return nil
}

// Wait asks the daemon to wait up to timeout for projection to process position. It returns
// whether the position was processed; a status other than 200 (done), 504 (timed out) or 503
// (not running yet) is an error.
func (d *Daemon) Wait(ctx context.Context, projection string, position uint64, timeout time.Duration) (bool, error) {
	u := fmt.Sprintf("%s/v1/projections/%s/wait?position=%d&timeout=%s", d.Base, projection, position, timeout)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return false, err
	}
	resp, err := d.http.Do(req)
	if err != nil {
		return false, &unreachableError{err}
	}
	defer func() { _ = resp.Body.Close() }()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	switch resp.StatusCode {
	case http.StatusOK:
		var w struct {
			Done bool `json:"done"`
		}
		if err := json.Unmarshal(body, &w); err != nil || !w.Done {
			return false, fmt.Errorf("GET %s: 200 with %s", u, body)
		}
		return true, nil
	case http.StatusGatewayTimeout, http.StatusServiceUnavailable:
		return false, nil
	default:
		return false, fmt.Errorf("GET %s: %s: %s", u, resp.Status, body)
	}
}

// WaitAll waits until every projection of names has processed position, for at most limit,
// and returns when each did, measured from since. It fails at once if the daemon exits.
func (d *Daemon) WaitAll(ctx context.Context, names []string, position uint64, since time.Time, limit time.Duration) (map[string]time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	var mu sync.Mutex
	done := map[string]time.Duration{}
	errs := make(chan error, len(names))
	for _, name := range names {
		go func() {
			for {
				ok, err := d.Wait(ctx, name, position, 5*time.Second)
				switch {
				case ok:
					mu.Lock()
					done[name] = time.Since(since)
					mu.Unlock()
					errs <- nil
					return
				case ctx.Err() != nil:
					errs <- fmt.Errorf("projection %s did not reach position %d within %v (last error: %v)", name, position, limit, err)
					return
				case err != nil && !errors.As(err, new(*unreachableError)):
					errs <- err
					return
				case d.Proc.Exited() != nil:
					errs <- d.Proc.Exited()
					return
				}
				select {
				case <-ctx.Done():
				case <-time.After(10 * time.Millisecond):
				}
			}
		}()
	}
	var first error
	for range names {
		if err := <-errs; err != nil && first == nil {
			first = err
			cancel()
		}
	}
	return done, first
}

// unreachableError is a wait request that got no answer: the daemon may not listen yet.
type unreachableError struct{ err error }

func (e *unreachableError) Error() string { return e.err.Error() }
func (e *unreachableError) Unwrap() error { return e.err }
