// The projections of a running daemon, replaced one by one: a version change of one projection
// stops and starts only that projection.

package daemon

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/projector-dev/projector/projection"
	"github.com/projector-dev/projector/tracking"
)

// Live is the set of projections a Run runs. Remove and Add change it while Run runs, leaving
// the other projections' workers, leases and subscriptions untouched (see projection.Runner's
// Remove and Add).
type Live[Tx any] struct {
	runner *projection.Runner[Tx]
	resets *resetTable[Tx]
}

// Remove stops the projections named names (each finishes or rolls back its batch in flight,
// within the drain timeout, and releases its lease) and forgets them; a name not running is
// skipped.
func (l *Live[Tx]) Remove(ctx context.Context, names ...string) error {
	for _, n := range names {
		if err := l.runner.Remove(ctx, n); err != nil && !errors.Is(err, tracking.ErrUnknownProjection) {
			return err
		}
		l.resets.set(n, nil)
	}
	return nil
}

// Add starts the projections ps.
func (l *Live[Tx]) Add(ps ...Projection[Tx]) error {
	for _, p := range ps {
		if err := l.runner.Add(p.Projection, p.Options); err != nil {
			return fmt.Errorf("start projection %q: %w", p.Projection.Name(), err)
		}
		l.resets.set(p.Projection.Name(), p.Reset)
	}
	return nil
}

// resetTable holds the view reset of each running projection (Projection.Reset), by name.
type resetTable[Tx any] struct {
	mu sync.Mutex
	fn map[string]func(context.Context, Tx) error
}

func (t *resetTable[Tx]) set(name string, fn func(context.Context, Tx) error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if fn == nil {
		delete(t.fn, name)
		return
	}
	t.fn[name] = fn
}

func (t *resetTable[Tx]) get(name string) func(context.Context, Tx) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.fn[name]
}

// statusOrder keeps the status in the order the projections were first set up, whatever the
// order the runner lists them in after some were restarted (Live.Remove, then Live.Add): by
// the place of each projection's name, a version building (NAME@VERSION) with its projection.
type statusOrder map[string]int

func newStatusOrder(sts []projection.Status) statusOrder {
	o := make(statusOrder, len(sts))
	for i, st := range sts {
		name, _, _ := strings.Cut(st.Name, "@")
		if _, ok := o[name]; !ok {
			o[name] = i
		}
	}
	return o
}

// sort sorts sts (stably) by the place of their projection; a projection set up later goes
// after the others, as the runner lists it.
func (o statusOrder) sort(sts []projection.Status) []projection.Status {
	place := func(st projection.Status) int {
		name, _, _ := strings.Cut(st.Name, "@")
		if i, ok := o[name]; ok {
			return i
		}
		return len(o)
	}
	slices.SortStableFunc(sts, func(a, b projection.Status) int { return place(a) - place(b) })
	return sts
}
