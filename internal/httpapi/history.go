package httpapi

import (
	"context"
	"net/http"
	"sync"
	"time"
)

// History keeps the recent lag and rates of every projection in memory for the status page's
// charts (GET /v1/history): a Ring of samples per projection, taken from the Provider's
// statuses every interval by Run.
type History struct {
	p         Provider
	processed func(projection string) float64
	every     time.Duration
	size      int
	now       func() time.Time

	mu    sync.Mutex
	rings map[string]*Ring[sample]
}

// sample is one projection's state at one time.
type sample struct {
	at         time.Time
	position   uint64
	lag        uint64
	lagSeconds float64
	processed  float64
}

// HistoryOptions configure a History.
type HistoryOptions struct {
	// Processed returns how many events a projection has applied since the daemon started
	// (the events-processed counter); nil leaves the events rate at zero.
	Processed func(projection string) float64
	// Every is the sampling interval (default 5s).
	Every time.Duration
	// Size is how many samples are kept per projection (default 120: ten minutes at 5s).
	Size int
	// Now returns the current time (default time.Now).
	Now func() time.Time
}

// NewHistory returns an empty History of the projections p reports.
func NewHistory(p Provider, o HistoryOptions) *History {
	if o.Every <= 0 {
		o.Every = 5 * time.Second
	}
	if o.Size <= 0 {
		o.Size = 120
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &History{p: p, processed: o.Processed, every: o.Every, size: o.Size, now: o.Now, rings: map[string]*Ring[sample]{}}
}

// Run samples every interval until ctx ends.
func (h *History) Run(ctx context.Context) {
	t := time.NewTicker(h.every)
	defer t.Stop()
	for {
		h.Sample()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Sample records the current state of every projection.
func (h *History) Sample() {
	now := h.now()
	head, haveHead := h.p.Head()
	statuses := h.p.Statuses()
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, s := range statuses {
		lag := s.Lag(head, haveHead, now)
		smp := sample{at: now, position: s.Position, lag: lag.Positions, lagSeconds: lag.Seconds}
		if h.processed != nil {
			smp.processed = h.processed(s.Name)
		}
		r, ok := h.rings[s.Name]
		if !ok {
			r = NewRing[sample](h.size)
			h.rings[s.Name] = r
		}
		r.Add(smp)
	}
}

// PointJSON is one sample of a projection in /v1/history.
type PointJSON struct {
	At         time.Time `json:"at"`
	Position   uint64    `json:"position"`
	Lag        uint64    `json:"lag"`
	LagSeconds float64   `json:"lag_seconds"`
	// EventsPerSecond and PositionsPerSecond are the rates since the sample before (zero for
	// the first one).
	EventsPerSecond    float64 `json:"events_per_second"`
	PositionsPerSecond float64 `json:"positions_per_second"`
}

// HistoryJSON is the body of /v1/history: each projection's samples, oldest first.
type HistoryJSON struct {
	IntervalSeconds float64                `json:"interval_seconds"`
	Projections     map[string][]PointJSON `json:"projections"`
}

// JSON returns the samples kept, with the rates between them.
func (h *History) JSON() HistoryJSON {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := HistoryJSON{IntervalSeconds: h.every.Seconds(), Projections: make(map[string][]PointJSON, len(h.rings))}
	for name, r := range h.rings {
		samples := r.Values()
		points := make([]PointJSON, len(samples))
		for i, s := range samples {
			points[i] = PointJSON{At: s.at.UTC(), Position: s.position, Lag: s.lag, LagSeconds: s.lagSeconds}
			if i == 0 {
				continue
			}
			prev := samples[i-1]
			dt := s.at.Sub(prev.at).Seconds()
			if dt <= 0 {
				continue
			}
			if s.processed >= prev.processed {
				points[i].EventsPerSecond = (s.processed - prev.processed) / dt
			}
			if s.position >= prev.position { // a reset rewinds the position: no rate then
				points[i].PositionsPerSecond = float64(s.position-prev.position) / dt
			}
		}
		out.Projections[name] = points
	}
	return out
}

func (a *api) history(w http.ResponseWriter, _ *http.Request) {
	if a.o.History == nil {
		writeJSON(w, http.StatusOK, HistoryJSON{Projections: map[string][]PointJSON{}})
		return
	}
	writeJSON(w, http.StatusOK, a.o.History.JSON())
}
