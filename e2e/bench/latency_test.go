package bench

import (
	"testing"
	"time"
)

func TestSummarise(t *testing.T) {
	var s []time.Duration
	for i := 100; i >= 1; i-- { // unsorted on purpose
		s = append(s, time.Duration(i)*time.Millisecond)
	}
	got := Summarise(s)
	want := Latency{P50: 50 * time.Millisecond, P99: 99 * time.Millisecond, Max: 100 * time.Millisecond, N: 100}
	if got != want {
		t.Errorf("Summarise(1..100ms) = %+v, want %+v", got, want)
	}
	if s[0] != 100*time.Millisecond {
		t.Error("Summarise reordered its argument")
	}
	if got := Summarise([]time.Duration{7}); got != (Latency{P50: 7, P99: 7, Max: 7, N: 1}) {
		t.Errorf("one sample: %+v", got)
	}
	if got := Summarise(nil); got != (Latency{}) {
		t.Errorf("no sample: %+v", got)
	}
}
