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
	started   time.Time // of the rates' window: the first update
	startPos  uint64
	events    int // applied by the build since started
	lastPrint time.Time

	// misses counts the swaps in a row that waited in vain for the shadow to catch up, each
	// with the serving version's tables locked; the next is not tried before notBefore.
	misses    int
	notBefore time.Time
}

// maxSwapBackoff bounds the pause between swaps that keep waiting in vain.
const maxSwapBackoff = 30 * time.Second

// missedSwap records at now a swap that gave up waiting for the shadow, and puts the next off
// by every, doubled for each miss in a row, at most maxSwapBackoff.
func (p *Progress) missedSwap(every time.Duration, now time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.misses++
	pause := every
	for i := 1; i < p.misses && pause < maxSwapBackoff; i++ {
		pause *= 2
	}
	p.notBefore = now.Add(min(pause, maxSwapBackoff))
}

// swapNotBefore is when the next swap may be tried.
func (p *Progress) swapNotBefore() time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.notBefore
}

// ProgressSnapshot is the progress of a build at one moment.
type ProgressSnapshot struct {
	Version         string
	Position        uint64 // the shadow's position
	ServingPosition uint64 // the serving version's, which the shadow must reach
	Head            uint64 // the head of $all (0 when unknown)
	// PositionsPerSecond and EventsPerSecond are the build's speed since this process began
	// leading it.
	PositionsPerSecond float64
	EventsPerSecond    float64
	// ETA is the time until the shadow reaches the serving position at that speed; 0 when
	// unknown.
	ETA     time.Duration
	Updated time.Time
}

// applied counts n events the build applied.
func (p *Progress) applied(n int) {
	p.mu.Lock()
	p.events += n
	p.mu.Unlock()
}

// update records the shadow's position, the serving version's and the head at now.
func (p *Progress) update(pos, serving, head uint64, now time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.started.IsZero() || pos < p.startPos {
		p.started, p.startPos, p.events = now, pos, 0
	}
	s := ProgressSnapshot{Version: p.Version, Position: pos, ServingPosition: serving, Head: head, Updated: now}
	if el := now.Sub(p.started).Seconds(); el > 0 {
		s.PositionsPerSecond = float64(pos-p.startPos) / el
		s.EventsPerSecond = float64(p.events) / el
	}
	if s.PositionsPerSecond > 0 && serving > pos {
		s.ETA = time.Duration(float64(serving-pos) / s.PositionsPerSecond * float64(time.Second))
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
