package versioning

import (
	"github.com/projector-dev/projector/internal/httpapi"
	"github.com/projector-dev/projector/projection"
)

// BatchCommitted implements projection.Observer: it counts the events each build applies.
func (g *Generation) BatchCommitted(b projection.CommittedBatch) {
	g.mu.Lock()
	var p *Progress
	for _, q := range g.progress {
		if q.Tracking == b.Projection {
			p = q
		}
	}
	g.mu.Unlock()
	if p != nil {
		p.applied(b.Events)
	}
}

// Rebuilds returns the progress of the versions building that this process leads, by the
// name of the projection they will serve, for /v1/projections.
func (g *Generation) Rebuilds() map[string]httpapi.RebuildJSON {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := map[string]httpapi.RebuildJSON{}
	for name, p := range g.progress {
		s := p.Snapshot()
		if s.Updated.IsZero() {
			continue
		}
		r := httpapi.RebuildJSON{Version: p.Version, ShadowSchema: p.Schema, Position: s.Position, ServingPosition: s.ServingPosition,
			EventsPerSecond: s.EventsPerSecond, PositionsPerSecond: s.PositionsPerSecond}
		if s.Head > 0 {
			h := s.Head
			r.Head = &h
		}
		if s.ETA > 0 {
			eta := s.ETA.Seconds()
			r.ETASeconds = &eta
		}
		out[name] = r
	}
	return out
}
