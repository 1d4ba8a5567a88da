// Dispatch: a Projection that routes each event to the handler registered for its type.

package projection

import (
	"context"
	"fmt"
	"sort"
)

// HandlerFunc applies one event to a view inside the store's transaction tx.
type HandlerFunc[Tx any] func(ctx context.Context, tx Tx, e Event) error

// Dispatch is a Projection that routes each event to the handler registered for its type,
// the Go counterpart of a Python projection's singledispatchmethod: Topics are the registered
// types, and events of other types are ignored.
//
//	counts := projection.New[*memory.Tx]("dog-counts").
//		On("__main__:Dog.Registered", registered).
//		On("__main__:Dog.TrickAdded", trickAdded)
type Dispatch[Tx any] struct {
	name     string
	handlers map[string]HandlerFunc[Tx]
	topics   []string
}

// New returns an empty Dispatch projection called name; register handlers with On.
func New[Tx any](name string) *Dispatch[Tx] {
	return &Dispatch[Tx]{name: name, handlers: make(map[string]HandlerFunc[Tx])}
}

// On registers h for events of type topic and returns d. Registering a topic twice, an empty
// topic or a nil handler is a programming error and panics with a message naming the topic.
func (d *Dispatch[Tx]) On(topic string, h HandlerFunc[Tx]) *Dispatch[Tx] {
	switch {
	case topic == "":
		panic(fmt.Sprintf("projection %q: On: empty topic", d.name))
	case h == nil:
		panic(fmt.Sprintf("projection %q: On(%q): nil handler", d.name, topic))
	}
	if _, dup := d.handlers[topic]; dup {
		panic(fmt.Sprintf("projection %q: On(%q): topic registered twice", d.name, topic))
	}
	d.handlers[topic] = h
	d.topics = append(d.topics, topic)
	sort.Strings(d.topics)
	return d
}

// Name implements Projection.
func (d *Dispatch[Tx]) Name() string { return d.name }

// Topics implements Projection: the registered topics, sorted.
func (d *Dispatch[Tx]) Topics() []string { return append([]string(nil), d.topics...) }

// Handle implements Projection: it calls the handler registered for e.Type, and does nothing
// for an event of another type.
func (d *Dispatch[Tx]) Handle(ctx context.Context, tx Tx, e Event) error {
	h, ok := d.handlers[e.Type]
	if !ok {
		return nil
	}
	return h(ctx, tx, e)
}
