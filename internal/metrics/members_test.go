package metrics_test

import (
	"testing"
	"time"

	"github.com/projector-dev/projector/internal/metrics"
)

// groupSource is a Source whose daemon is a member of a scale-out group.
type groupSource struct {
	fakeSource
	members int
	known   bool
}

func (g *groupSource) Members() (int, bool) { return g.members, g.known }

func TestMembersGaugeOnlyWhenKnown(t *testing.T) {
	src := &groupSource{}
	m := metrics.New(src, func() time.Time { return now })
	if v, ok := gather(t, m)[metrics.Members]; ok {
		t.Errorf("%s = %v before the group was read, want absent", metrics.Members, v)
	}
	src.members, src.known = 3, true
	if v := gather(t, m)[metrics.Members]; v != 3 {
		t.Errorf("%s = %v, want 3", metrics.Members, v)
	}
	if _, ok := gather(t, metrics.New(&fakeSource{}, nil))[metrics.Members]; ok {
		t.Errorf("%s exported by a daemon outside a group", metrics.Members)
	}
}
