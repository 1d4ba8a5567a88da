// Package trainingschool is the training-school example of the Python eventsourcing-kurrentdb
// package in Go: a write model that records dogs and their tricks in KurrentDB in the shape the
// Python package gives them (it appends through BatchAppend, this one through Append; the stored
// events are the same), and a projection that counts dogs and tricks, as an in-memory view and
// as a PostgreSQL view.
package trainingschool

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/google/uuid"
	"github.com/kurrent-io/KurrentDB-Client-Go/kurrentdb"
)

// The topics (event types) of the Python example's Dog aggregate, defined in __main__.
const (
	TopicDogRegistered = "__main__:Dog.Registered"
	TopicTrickAdded    = "__main__:Dog.TrickAdded"
	dogTopic           = "__main__:Dog"
)

// DogID is the aggregate id of the dog called name: uuid5(NAMESPACE_URL, "/dogs/<name>"), as
// Dog.create_id computes it.
func DogID(name string) uuid.UUID {
	return uuid.NewSHA1(uuid.NameSpaceURL, []byte("/dogs/"+name))
}

// School is the write side: it appends the Dog aggregate's events to KurrentDB shaped as
// eventsourcing-kurrentdb stores them (stream = aggregate id, revisions from 0, type = topic,
// data = eventsourcing JSON without originator_id and originator_version, content type
// application/octet-stream, no metadata).
type School struct {
	client *kurrentdb.Client
	now    func() time.Time
}

// NewSchool returns a School writing through client.
func NewSchool(client *kurrentdb.Client) *School {
	return &School{client: client, now: time.Now}
}

// Register records a new dog and returns the commit position of its event (the Python
// "notification id").
func (s *School) Register(ctx context.Context, name string) (uint64, error) {
	data := map[string]any{"timestamp": s.timestamp(), "originator_topic": dogTopic, "name": name}
	return s.append(ctx, name, kurrentdb.NoStream{}, TopicDogRegistered, data)
}

// RegisterWithTricks records a new dog together with some tricks in one append, as Python
// saves an aggregate with several pending events, and returns the last event's position.
func (s *School) RegisterWithTricks(ctx context.Context, name string, tricks ...string) (uint64, error) {
	events := []map[string]any{{"timestamp": s.timestamp(), "originator_topic": dogTopic, "name": name}}
	topics := []string{TopicDogRegistered}
	for _, t := range tricks {
		events = append(events, map[string]any{"timestamp": s.timestamp(), "trick": t})
		topics = append(topics, TopicTrickAdded)
	}
	return s.appendAll(ctx, name, kurrentdb.NoStream{}, topics, events)
}

// AddTrick records a trick of a registered dog and returns the event's commit position.
func (s *School) AddTrick(ctx context.Context, name, trick string) (uint64, error) {
	rev, err := s.lastRevision(ctx, name)
	if err != nil {
		return 0, err
	}
	data := map[string]any{"timestamp": s.timestamp(), "trick": trick}
	return s.append(ctx, name, kurrentdb.StreamRevision{Value: rev}, TopicTrickAdded, data)
}

func (s *School) timestamp() map[string]string {
	return map[string]string{"_type_": "datetime_iso", "_data_": s.now().UTC().Format("2006-01-02T15:04:05.000000+00:00")}
}

func (s *School) append(ctx context.Context, name string, state kurrentdb.StreamState, topic string, data map[string]any) (uint64, error) {
	return s.appendAll(ctx, name, state, []string{topic}, []map[string]any{data})
}

func (s *School) appendAll(ctx context.Context, name string, state kurrentdb.StreamState, topics []string, data []map[string]any) (uint64, error) {
	events := make([]kurrentdb.EventData, len(data))
	for i, d := range data {
		b, err := json.Marshal(d) // compact, keys sorted, as the Python JSON transcoder writes
		if err != nil {
			return 0, err
		}
		events[i] = kurrentdb.EventData{EventID: uuid.New(), EventType: topics[i], ContentType: kurrentdb.ContentTypeBinary, Data: b, Metadata: []byte{}}
	}
	r, err := s.client.AppendToStream(ctx, DogID(name).String(), kurrentdb.AppendToStreamOptions{StreamState: state}, events...)
	if err != nil {
		return 0, fmt.Errorf("trainingschool: append %d events for dog %q: %w", len(events), name, err)
	}
	return r.CommitPosition, nil
}

func (s *School) lastRevision(ctx context.Context, name string) (uint64, error) {
	rs, err := s.client.ReadStream(ctx, DogID(name).String(), kurrentdb.ReadStreamOptions{Direction: kurrentdb.Backwards, From: kurrentdb.End{}}, 1)
	if err != nil {
		return 0, fmt.Errorf("trainingschool: read dog %q: %w", name, err)
	}
	defer rs.Close()
	ev, err := rs.Recv()
	if errors.Is(err, io.EOF) {
		return 0, fmt.Errorf("trainingschool: dog %q is not registered", name)
	}
	if err != nil {
		if e, ok := kurrentdb.FromError(err); !ok && e.Code() == kurrentdb.ErrorCodeResourceNotFound {
			return 0, fmt.Errorf("trainingschool: dog %q is not registered", name)
		}
		return 0, fmt.Errorf("trainingschool: read dog %q: %w", name, err)
	}
	return ev.OriginalEvent().EventNumber, nil
}

// Registered is the payload of a Dog.Registered event.
type Registered struct {
	Name string `json:"name"`
}

// TrickAdded is the payload of a Dog.TrickAdded event.
type TrickAdded struct {
	Trick string `json:"trick"`
}

// decode parses an event's eventsourcing JSON into v, naming the event on failure.
func decode(data []byte, typ, stream string, v any) error {
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("decode %s in stream %s: %w", typ, stream, err)
	}
	return nil
}
