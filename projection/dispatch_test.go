// Tests and example of Dispatch.

package projection_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/projector-dev/projector/projection"
	"github.com/projector-dev/projector/views/memory"
)

func TestDispatchRoutesByTypeAndIgnoresOthers(t *testing.T) {
	var got []string
	p := projection.New[*memory.Tx]("p").
		On("b", func(_ context.Context, _ *memory.Tx, e projection.Event) error {
			got = append(got, "b:"+e.ID)
			return nil
		}).
		On("a", func(_ context.Context, _ *memory.Tx, e projection.Event) error {
			got = append(got, "a:"+e.ID)
			return nil
		})
	if strings.Join(p.Topics(), ",") != "a,b" || p.Name() != "p" {
		t.Fatalf("topics %v, name %s", p.Topics(), p.Name())
	}
	for _, e := range []projection.Event{{ID: "1", Type: "a"}, {ID: "2", Type: "c"}, {ID: "3", Type: "b"}} {
		if err := p.Handle(context.Background(), nil, e); err != nil {
			t.Fatal(err)
		}
	}
	if strings.Join(got, ",") != "a:1,b:3" {
		t.Errorf("handled %v", got)
	}
	defer func() {
		if r := recover(); r == nil || !strings.Contains(fmt.Sprint(r), `On("a"): topic registered twice`) {
			t.Errorf("duplicate On: recovered %v", r)
		}
	}()
	p.On("a", func(context.Context, *memory.Tx, projection.Event) error { return nil })
}

// A Go projection reads like the Python example's singledispatchmethod: one handler per event
// type, registered by topic.
func ExampleDispatch() {
	counts := projection.New[*memory.Tx]("dog-counts").
		On("__main__:Dog.Registered", func(_ context.Context, tx *memory.Tx, _ projection.Event) error {
			tx.Add("dogs", 1)
			return nil
		}).
		On("__main__:Dog.TrickAdded", func(_ context.Context, tx *memory.Tx, _ projection.Event) error {
			tx.Add("tricks", 1)
			return nil
		})
	fmt.Println(counts.Name(), counts.Topics())
	// Output: dog-counts [__main__:Dog.Registered __main__:Dog.TrickAdded]
}
