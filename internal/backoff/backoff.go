// Package backoff spaces out the attempts of a retry loop: capped exponential growth with
// jitter. Every retry loop of Projector (the runner's restarts and its retry policy, the
// PostgreSQL waiters' LISTEN connection and tracking reads, the daemon's start-up connections)
// uses it, so that they all back off alike.
package backoff

import (
	"math/rand/v2"
	"time"
)

// Backoff computes the wait before each attempt of a retry loop. The first wait is about Min;
// each further one doubles, up to Max; Reset starts again from Min after a success. Every wait
// is jittered into [d/2, d] of its nominal length d, so that processes retrying after the same
// fault spread out. A Backoff is not safe for concurrent use; each loop owns its own.
type Backoff struct {
	min, max time.Duration
	next     time.Duration // the nominal length of the next wait; 0 after Reset
}

// New returns a Backoff whose waits grow from min to max. A max below min is taken as min.
func New(min, max time.Duration) *Backoff {
	return &Backoff{min: min, max: max}
}

// Next returns the wait before the next attempt and doubles the one after, up to the cap.
func (b *Backoff) Next() time.Duration {
	if b.next == 0 {
		b.next = b.min
	}
	d := b.next
	b.next = min(2*b.next, b.cap())
	return jitter(d)
}

// Longest returns the longest wait (the cap, jittered) and leaves the Backoff at its cap: for
// a fault that retrying soon cannot fix.
func (b *Backoff) Longest() time.Duration {
	b.next = b.cap()
	return b.Next()
}

// Reset starts the waits again from min, after a success.
func (b *Backoff) Reset() { b.next = 0 }

func (b *Backoff) cap() time.Duration { return max(b.max, b.min) }

// jitter returns a uniformly random duration in [d/2, d].
func jitter(d time.Duration) time.Duration {
	half := d / 2
	if half <= 0 {
		return d
	}
	return half + rand.N(half+1)
}
