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

// statusRunner is a runner that reports the statuses it holds and takes no command.
type statusRunner struct {
	runner
	sts []projection.Status
}

func (r statusRunner) Status() []projection.Status { return append([]projection.Status(nil), r.sts...) }

// A configured projection the runner does not run for the moment (a new version of it is
// taking over) stays in the provider's list, as starting: the wait API and the status page
// still know it.
func TestProviderKeepsAProjectionBeingReplaced(t *testing.T) {
	c := newCurrent(nil)
	c.start(statusRunner{sts: []projection.Status{{Name: "a", State: projection.StateLive}, {Name: "b@v2", State: projection.StateLive}}}, nil)
	p := NewProvider([]string{"a", "b"}, nil)
	p.runner = c
	var got []string
	for _, st := range p.Statuses() {
		got = append(got, st.Name+"="+string(st.State))
	}
	if want := []string{"a=live", "b@v2=live", "b=starting"}; !slices.Equal(got, want) {
		t.Fatalf("statuses %v, want %v", got, want)
	}
}
