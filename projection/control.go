// Operator commands for a stopped projection: Resume and Skip, handed to its worker.

package projection

import (
	"fmt"

	"github.com/projector-dev/projector/tracking"
)

// Resume and Skip of a partitioned projection apply to each of its partitions that is stopped
// (on an event, for Skip); a partition's name (PartitionName) names one partition.

// Resume restarts a projection stopped on a poison event (or a tracking conflict) without a
// restart of the process: it re-reads the tracked position and retries the failing event, under
// the projection's error policy again. It returns an error wrapping tracking.ErrUnknownProjection
// for an unknown name and ErrNotStopped when the projection is not stopped.
func (r *Runner[Tx]) Resume(projection string) error {
	return r.control(projection, CommandResume)
}

// Skip restarts a projection stopped on a poison event past that event: the event is written
// to the store's dead letters when the store keeps them (DeadLetterer), or else only recorded as
// skipped by the tracking advance (and reported through Observer.EventFailed with policy
// "skip"); then processing goes on. It returns an error wrapping
// tracking.ErrUnknownProjection for an unknown name, and ErrNotStopped when the projection is
// not stopped or was stopped by something other than an event (use Resume).
func (r *Runner[Tx]) Skip(projection string) error {
	return r.control(projection, CommandSkip)
}

func (r *Runner[Tx]) control(name string, c Command) error {
	r.mu.Lock()
	w, ok := r.byName[name]
	parts := r.groups[name]
	r.mu.Unlock()
	if len(parts) > 0 {
		return controlPartitions(name, parts, c)
	}
	if !ok {
		return fmt.Errorf("%s %q: %w", c, name, tracking.ErrUnknownProjection)
	}
	return w.command(name, c)
}

// controlPartitions gives c to every partition of projection name that can take it (Resume:
// each stopped one; Skip: each stopped on an event). It fails, with the first partition's
// reason, when none can.
func controlPartitions[Tx any](name string, parts []*worker[Tx], c Command) error {
	var first error
	took := 0
	for _, w := range parts {
		if err := w.command(w.name, c); err != nil {
			if first == nil {
				first = err
			}
			continue
		}
		took++
	}
	if took == 0 {
		return fmt.Errorf("%s %q: no partition can take it: %w", c, name, first)
	}
	return nil
}

// command hands c to the worker if it is stopped (on an event, for Skip).
func (w *worker[Tx]) command(name string, c Command) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	switch {
	case w.st.State != StateStopped:
		return fmt.Errorf("%s %q: it is %s: %w", c, name, w.st.State, ErrNotStopped)
	case w.pending:
		return fmt.Errorf("%s %q: a command is already pending: %w", c, name, ErrNotStopped)
	case c == CommandSkip && w.st.Failed == nil:
		return fmt.Errorf("%s %q: it is stopped by %q, not on an event (Resume retries): %w", c, name, w.st.Error, ErrNotStopped)
	}
	w.pending = true
	w.ctl <- c
	return nil
}
