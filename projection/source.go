// The source side: a Source of $all events, its Subscription and messages, and the Prober
// of idle live projections.

package projection

import (
	"context"
	"time"

	"github.com/projector-dev/projector/tracking"
)

// Source delivers the events of the $all log whose types are among a set of topics. The events
// it delivers may be shared with other subscriptions and are read-only (see Event).
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

// Prober is implemented by sources that can look ahead for a projection's next event. A live
// filtered subscription sends server checkpoints only every so many events of $all, so after
// an event a projection ignores, with no traffic following, nothing would tell the runner that
// its position is done. With a Source that implements both Header and Prober, the runner closes
// that gap while live and idle: it reads the head H of $all first, then asks Probe whether an
// event of the projection's topics that is not done lies at or before H. If none does, every
// position through H is done, and the runner commits the exclusive checkpoint H+1 as it would a
// server checkpoint. Events written after the head was read lie past H, so none is skipped.
type Prober interface {
	// Probe reports whether $all holds an event whose type is one of topics, that is not done
	// according to from (tracking.State.Done), at a commit position of at most through.
	Probe(ctx context.Context, topics []string, from tracking.State, through uint64) (bool, error)
}
