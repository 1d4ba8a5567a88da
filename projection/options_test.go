package projection_test

import (
	"testing"
	"time"

	"github.com/projector-dev/projector/projection"
)

// WithDefaults fills exactly the zero fields, from the package's defaults, and keeps the retry
// backoff within its cap.
func TestProjectionOptionsWithDefaults(t *testing.T) {
	got := projection.ProjectionOptions{}.WithDefaults()
	want := projection.ProjectionOptions{
		BatchSize: projection.DefaultBatchSize, BatchInterval: projection.DefaultBatchInterval,
		Start: projection.Start{Kind: projection.DefaultStart},
		OnError: projection.ErrorPolicy{Policy: projection.DefaultPolicy, Retries: projection.DefaultRetries,
			Backoff: projection.DefaultRetryBackoff, MaxBackoff: projection.DefaultMaxBackoff},
	}
	if got != want {
		t.Errorf("zero options with defaults = %+v\nwant %+v", got, want)
	}
	set := projection.ProjectionOptions{BatchSize: 7, BatchInterval: time.Second, OnError: projection.ErrorPolicy{Policy: projection.PolicyRetry, Retries: 2, Backoff: time.Millisecond, MaxBackoff: time.Second}}
	if got := set.WithDefaults(); got != set {
		t.Errorf("options given in full changed: %+v, want %+v", got, set)
	}
	long := projection.ProjectionOptions{OnError: projection.ErrorPolicy{Backoff: time.Minute}}.WithDefaults()
	if long.OnError.MaxBackoff != time.Minute {
		t.Errorf("Backoff 1m with no MaxBackoff: MaxBackoff = %v, want 1m (the cap never undercuts the first wait)", long.OnError.MaxBackoff)
	}
	short := projection.ProjectionOptions{OnError: projection.ErrorPolicy{MaxBackoff: 200 * time.Millisecond}}.WithDefaults()
	if short.OnError.Backoff != 200*time.Millisecond {
		t.Errorf("MaxBackoff 200ms with no Backoff: Backoff = %v, want 200ms (the default first wait capped)", short.OnError.Backoff)
	}
}
