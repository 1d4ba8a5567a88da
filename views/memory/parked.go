package memory

import (
	"cmp"
	"context"
	"maps"
	"slices"
	"time"

	"github.com/projector-dev/projector/projection"
)

var _ projection.Parker[*Tx] = (*Store)(nil)

// parkedKey names one parked stream of a projection.
type parkedKey struct{ projection, stream string }

// parkedTable is what the store keeps of parked events: by stream, in log order, and the order
// the streams were parked in.
type parkedTable struct {
	events map[parkedKey][]projection.ParkedEvent
	seq    map[parkedKey]int64
	next   int64
}

func (p parkedTable) clone() parkedTable {
	c := parkedTable{events: make(map[parkedKey][]projection.ParkedEvent, len(p.events)), seq: maps.Clone(p.seq), next: p.next}
	for k, v := range p.events {
		c.events[k] = slices.Clone(v)
	}
	if c.seq == nil {
		c.seq = map[parkedKey]int64{}
	}
	return c
}

// parkedOf returns the transaction's copy of the parked events, made at its first change.
func (tx *Tx) parkedOf() *parkedTable {
	if tx.parked == nil {
		c := tx.s.parked.clone()
		tx.parked = &c
	}
	return tx.parked
}

// parkedView returns the parked events as tx sees them.
func (tx *Tx) parkedView() parkedTable {
	if tx.parked != nil {
		return *tx.parked
	}
	return tx.s.parked
}

// Park implements projection.Parker: the event is kept if tx commits.
func (s *Store) Park(_ context.Context, tx *Tx, projectionName string, e projection.Event, cause error) error {
	p := tx.parkedOf()
	k := parkedKey{projectionName, e.Stream}
	pe := projection.ParkedEvent{Event: e, ParkedAt: time.Now()}
	if cause != nil {
		pe.Error = cause.Error()
	}
	if _, ok := p.seq[k]; !ok {
		p.next++
		p.seq[k] = p.next
	}
	evs := append(p.events[k], pe)
	slices.SortStableFunc(evs, func(a, b projection.ParkedEvent) int { return a.Event.Position.Compare(b.Event.Position) })
	p.events[k] = evs
	return nil
}

// ParkedStreams implements projection.Parker.
func (s *Store) ParkedStreams(_ context.Context, projectionName string) ([]projection.ParkedStream, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []projection.ParkedStream
	var seqs []int64
	for k, evs := range s.parked.events {
		if k.projection == projectionName && len(evs) > 0 {
			out = append(out, projection.ParkedStream{Stream: k.stream, Events: len(evs), First: evs[0]})
			seqs = append(seqs, s.parked.seq[k])
		}
	}
	idx := make([]int, len(out))
	for i := range idx {
		idx[i] = i
	}
	slices.SortFunc(idx, func(a, b int) int { return cmp.Compare(seqs[a], seqs[b]) })
	sorted := make([]projection.ParkedStream, len(out))
	for i, j := range idx {
		sorted[i] = out[j]
	}
	return sorted, nil
}

// Parked implements projection.Parker.
func (s *Store) Parked(_ context.Context, tx *Tx, projectionName, stream string) ([]projection.ParkedEvent, error) {
	return slices.Clone(tx.parkedView().events[parkedKey{projectionName, stream}]), nil
}

// Unpark implements projection.Parker.
func (s *Store) Unpark(_ context.Context, tx *Tx, projectionName, stream string, through projection.Position) error {
	p := tx.parkedOf()
	k := parkedKey{projectionName, stream}
	evs := slices.DeleteFunc(p.events[k], func(pe projection.ParkedEvent) bool { return pe.Event.Position.Compare(through) <= 0 })
	if len(evs) == 0 {
		delete(p.events, k)
		delete(p.seq, k)
		return nil
	}
	p.events[k] = evs
	return nil
}

// ReparkFailed implements projection.Parker.
func (s *Store) ReparkFailed(_ context.Context, tx *Tx, projectionName string, e projection.Event, cause error) error {
	p := tx.parkedOf()
	evs := p.events[parkedKey{projectionName, e.Stream}]
	for i := range evs {
		if evs[i].Event.Position == e.Position {
			evs[i].Error = cause.Error()
		}
	}
	return nil
}

// ClearParked implements projection.Parker.
func (s *Store) ClearParked(_ context.Context, tx *Tx, projectionName string) error {
	p := tx.parkedOf()
	for k := range p.events {
		if k.projection == projectionName {
			delete(p.events, k)
			delete(p.seq, k)
		}
	}
	return nil
}
