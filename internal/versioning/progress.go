package versioning

import (
	"sync"
	"time"
)

// Progress follows one version building in its shadow schema.
type Progress struct {
	Version  string // the version building
	Tracking string // its tracking name
	Schema   string // its shadow schema

	mu        sync.Mutex
	snap      ProgressSnapshot
	started   time.Time // of the rate's window
	startPos  uint64
	lastPrint time.Time
}

// ProgressSnapshot is the progress of a build at one moment.
type ProgressSnapshot struct {
	Version         string        `json:"version"`
	Position        uint64        `json:"position"`         // the shadow's position
	ServingPosition uint64        `json:"serving_position"` // the serving version's, which the shadow must reach
	Head            uint64        `json:"head,omitempty"`   // the head of $all (0 when unknown)
	Rate            float64       `json:"positions_per_second"`
	ETA             time.Duration `json:"eta_ns,omitempty"` // until the serving position, at Rate; 0 when unknown
	Updated         time.Time     `json:"updated"`
}

// update records the shadow's position, the serving version's and the head at now.
func (p *Progress) update(pos, serving, head uint64, now time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.started.IsZero() || pos < p.startPos {
		p.started, p.startPos = now, pos
	}
	s := ProgressSnapshot{Version: p.Version, Position: pos, ServingPosition: serving, Head: head, Updated: now}
	if el := now.Sub(p.started).Seconds(); el > 0 {
		s.Rate = float64(pos-p.startPos) / el
	}
	if s.Rate > 0 && serving > pos {
		s.ETA = time.Duration(float64(serving-pos) / s.Rate * float64(time.Second))
	}
	p.snap = s
}

// due reports whether a progress line is due at now, every every.
func (p *Progress) due(every time.Duration, now time.Time) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if now.Sub(p.lastPrint) < every {
		return false
	}
	p.lastPrint = now
	return true
}

// Snapshot returns the last progress recorded.
func (p *Progress) Snapshot() ProgressSnapshot {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.snap
}
