package daemon

import (
	"slices"
	"testing"

	"github.com/projector-dev/projector/projection"
)

// The status keeps the order the projections were set up in after one is restarted (and so
// listed last by the runner), its version building right after it; a new name goes last.
func TestStatusOrderKeepsTheFirstOrder(t *testing.T) {
	named := func(names ...string) []projection.Status {
		sts := make([]projection.Status, len(names))
		for i, n := range names {
			sts[i] = projection.Status{Name: n}
		}
		return sts
	}
	o := newStatusOrder(named("a", "b", "b@v1", "c"))
	got := o.sort(named("a", "c", "new", "b", "b@v2"))
	var names []string
	for _, st := range got {
		names = append(names, st.Name)
	}
	if want := []string{"a", "b", "b@v2", "c", "new"}; !slices.Equal(names, want) {
		t.Fatalf("order %v, want %v", names, want)
	}
}
