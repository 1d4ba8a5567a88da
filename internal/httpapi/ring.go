package httpapi

// Ring keeps the last values added to it, up to its capacity: a fixed-size ring buffer.
// It is not safe for concurrent use.
type Ring[T any] struct {
	buf  []T
	next int  // where the next value goes
	full bool // every slot holds a value
}

// NewRing returns an empty Ring that keeps the last capacity values (at least one).
func NewRing[T any](capacity int) *Ring[T] {
	return &Ring[T]{buf: make([]T, max(capacity, 1))}
}

// Add appends v, dropping the oldest value when the Ring is full.
func (r *Ring[T]) Add(v T) {
	r.buf[r.next] = v
	r.next++
	if r.next == len(r.buf) {
		r.next, r.full = 0, true
	}
}

// Len is how many values the Ring holds.
func (r *Ring[T]) Len() int {
	if r.full {
		return len(r.buf)
	}
	return r.next
}

// Values returns a copy of the values held, oldest first.
func (r *Ring[T]) Values() []T {
	if !r.full {
		return append([]T(nil), r.buf[:r.next]...)
	}
	out := make([]T, 0, len(r.buf))
	out = append(out, r.buf[r.next:]...)
	return append(out, r.buf[:r.next]...)
}
