package httpapi

import (
	"fmt"
	"testing"
)

func TestRingKeepsTheLastValuesOldestFirst(t *testing.T) {
	r := NewRing[int](3)
	if r.Len() != 0 || len(r.Values()) != 0 {
		t.Fatalf("new ring: len %d, values %v", r.Len(), r.Values())
	}
	for i, want := range []string{"[1]", "[1 2]", "[1 2 3]", "[2 3 4]", "[3 4 5]", "[4 5 6]", "[5 6 7]"} {
		r.Add(i + 1)
		if got := fmt.Sprint(r.Values()); got != want {
			t.Errorf("after adding %d: %s, want %s", i+1, got, want)
		}
		if r.Len() != min(i+1, 3) {
			t.Errorf("after adding %d: len %d", i+1, r.Len())
		}
	}
	// Values is a copy: changing it leaves the ring alone.
	v := r.Values()
	v[0] = 99
	if got := fmt.Sprint(r.Values()); got != "[5 6 7]" {
		t.Errorf("after changing the copy: %s", got)
	}
	one := NewRing[string](0)
	one.Add("a")
	one.Add("b")
	if got := fmt.Sprint(one.Values()); got != "[b]" {
		t.Errorf("ring of capacity 0 (taken as 1) = %s, want [b]", got)
	}
}
