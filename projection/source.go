package projection

import (
	"context"
	"time"

	"github.com/projector-dev/projector/tracking"
)

// Source delivers the events of the $all log whose types are among a set of topics.
type Source interface {
	// Subscribe starts a subscription to the events whose type is one of topics and that are
	// not yet done according to from (tracking.State.Done). The subscription ends when ctx
	// ends or Close is called.
	Subscribe(ctx context.Context, topics []string, from tracking.State) (Subscription, error)
}

// Subscription is a live, ordered feed of messages from a Source.
type Subscription interface {
	// Next blocks until the next message, ctx's end, or the subscription's failure.
	Next(ctx context.Context) (Message, error)
	// Close ends the subscription and releases its resources. It is safe to call twice.
	Close() error
}

// MessageKind tells what a Message carries.
type MessageKind int

const (
	// EventMessage carries an event of one of the subscribed topics.
	EventMessage MessageKind = iota + 1
	// CheckpointMessage carries a server checkpoint: every subscribed event strictly before
	// Checkpoint has been delivered (exclusive, see tracking).
	CheckpointMessage
	// CaughtUpMessage says the subscription has delivered everything the log held when it
	// caught up and now follows live events.
	CaughtUpMessage
)

// Message is one item of a Subscription.
type Message struct {
	Kind       MessageKind
	Event      Event     // for EventMessage
	Checkpoint uint64    // for CheckpointMessage: exclusive commit position
	Time       time.Time // server time of a checkpoint or caught-up message, when known
}
