// How far a projection is behind, from its Status: for the lag metrics and the status API.

package projection

import "time"

// Lag is how far a projection is behind.
type Lag struct {
	Positions uint64  // head minus position; 0 when caught up with nothing pending
	Seconds   float64 // age of the oldest event not yet projected; 0 when none is pending
}

// Lag computes the lag of the projection whose status is s, given the head position of $all
// (when haveHead) and the current time. A caught-up projection with nothing pending has no
// lag, even when the head has moved on through events it filters out.
func (s Status) Lag(head uint64, haveHead bool, now time.Time) Lag {
	var l Lag
	if !s.OldestPending.IsZero() {
		if age := now.Sub(s.OldestPending).Seconds(); age > 0 {
			l.Seconds = age
		}
	}
	if haveHead && head > s.Position && !(s.CaughtUp && s.OldestPending.IsZero()) {
		l.Positions = head - s.Position
	}
	return l
}
