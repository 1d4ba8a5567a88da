package projection

// Waiting returns the number of Wait calls blocked on projection in r's watermark, for the
// tests of Remove.
func (r *Runner[Tx]) Waiting(projection string) int { return r.wm.Waiting(projection) }
