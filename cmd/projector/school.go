package main

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/kurrent-io/KurrentDB-Client-Go/kurrentdb"
)

// The topics of the seed's training school, as Python's eventsourcing names them when the
// classes are defined in a script (module __main__).
const (
	topicDog        = "__main__:Dog"
	topicRegistered = "__main__:Dog.Registered"
	topicTrickAdded = "__main__:Dog.TrickAdded"
)

// school writes the training school's events the way the Python eventsourcing-kurrentdb
// package does: the dog's id (uuid5 of its name) as stream name, revisions from 0, the topic as
// event type, compact JSON with eventsourcing's transcoding of datetimes as data, content type
// application/octet-stream, empty metadata.
type school struct {
	client *kurrentdb.Client
	now    func() time.Time
}

// dogID is Dog.create_id(name): uuid5(NAMESPACE_URL, "/dogs/<name>").
func dogID(name string) uuid.UUID { return uuid.NewSHA1(uuid.NameSpaceURL, []byte("/dogs/"+name)) }

// timestamp transcodes t as eventsourcing does a datetime.
func timestamp(t time.Time) map[string]string {
	return map[string]string{"_type_": "datetime_iso", "_data_": t.UTC().Format("2006-01-02T15:04:05.000000-07:00")}
}

// orderedJSON encodes key/value pairs in order, compactly, as Python's json module does for a
// dict (json.Marshal sorts map keys, which eventsourcing does not).
func orderedJSON(kv ...any) ([]byte, error) {
	b := []byte{'{'}
	for i := 0; i < len(kv); i += 2 {
		if i > 0 {
			b = append(b, ',')
		}
		k, err := json.Marshal(kv[i])
		if err != nil {
			return nil, err
		}
		v, err := json.Marshal(kv[i+1])
		if err != nil {
			return nil, err
		}
		b = append(append(append(b, k...), ':'), v...)
	}
	return append(b, '}'), nil
}

// Register records Dog.Registered for a new dog and returns the event's commit position.
func (s *school) Register(ctx context.Context, name string) (uint64, error) {
	data, err := orderedJSON("timestamp", timestamp(s.now()), "originator_topic", topicDog, "name", name)
	if err != nil {
		return 0, err
	}
	return s.append(ctx, name, kurrentdb.NoStream{}, topicRegistered, data)
}

// AddTrick records Dog.TrickAdded for the dog whose last revision is rev, and returns the
// event's commit position.
func (s *school) AddTrick(ctx context.Context, name string, rev uint64, trick string) (uint64, error) {
	data, err := orderedJSON("timestamp", timestamp(s.now()), "trick", trick)
	if err != nil {
		return 0, err
	}
	return s.append(ctx, name, kurrentdb.Revision(rev), topicTrickAdded, data)
}

func (s *school) append(ctx context.Context, name string, expected kurrentdb.StreamState, topic string, data []byte) (uint64, error) {
	r, err := s.client.AppendToStream(ctx, dogID(name).String(), kurrentdb.AppendToStreamOptions{StreamState: expected},
		kurrentdb.EventData{EventID: uuid.New(), EventType: topic, ContentType: kurrentdb.ContentTypeBinary, Data: data, Metadata: []byte{}})
	if err != nil {
		return 0, fmt.Errorf("append %s to dog %s: %w", topic, name, err)
	}
	return r.CommitPosition, nil
}
