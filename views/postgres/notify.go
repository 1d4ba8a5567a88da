package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/projector-dev/projector/tracking"
)

// The payload of a tracking notification is the committed tracking state of one projection,
// so that waiters compare against it without reading the tracking row:
//
//	{"schema":"public","commit":120,"prepare":120,"checkpoint":0} dogs
//
// a JSON object without spaces (a space in the schema's name is written \u0020), one space,
// then the projection's name (which may hold spaces). Schema is the schema of the tracking
// table (the first of the search_path): several deployments may share a database and a channel
// with tables in schemas of their own, and a listener applies only the notifications of its own
// schema. The name comes last, after the first space, as in the payload of earlier versions
// ("<position> <projection>"), whose listeners re-read the row of the projection named there:
// they keep waking during a rolling upgrade. This file is the only place that writes or reads
// the payload.
type notification struct {
	Schema     string `json:"schema"`
	Commit     uint64 `json:"commit"`
	Prepare    uint64 `json:"prepare"`
	Checkpoint uint64 `json:"checkpoint"`
}

// encodeNotification returns the payload announcing that projection, tracked in schema, has
// committed s.
func encodeNotification(schema, projection string, s tracking.State) string {
	b, err := json.Marshal(notification{Schema: schema, Commit: s.Last.Commit, Prepare: s.Last.Prepare, Checkpoint: s.Checkpoint})
	if err != nil {
		panic(fmt.Sprintf("postgres: encode a notification: %v", err)) // a string and numbers always encode
	}
	// Compact JSON has spaces only inside strings, where \u0020 means the same.
	return strings.ReplaceAll(string(b), " ", `\u0020`) + " " + projection
}

// decodeNotification parses a payload written by encodeNotification, with an error naming
// what is wrong for anything else (a payload of an earlier version, or of another program on
// the channel).
func decodeNotification(payload string) (schema, projection string, s tracking.State, err error) {
	state, projection, ok := strings.Cut(payload, " ")
	if !ok || projection == "" {
		return "", "", tracking.State{}, fmt.Errorf("notification payload %q: want a tracking state, a space and the projection's name", abbreviate(payload))
	}
	dec := json.NewDecoder(strings.NewReader(state))
	dec.DisallowUnknownFields()
	var n notification
	if err := dec.Decode(&n); err != nil {
		return "", "", tracking.State{}, fmt.Errorf("notification payload %q: %q is not a tracking state: %w", abbreviate(payload), state, err)
	}
	if dec.More() {
		return "", "", tracking.State{}, fmt.Errorf("notification payload %q: text after the tracking state", abbreviate(payload))
	}
	s = tracking.State{Last: tracking.Position{Commit: n.Commit, Prepare: n.Prepare}, Checkpoint: n.Checkpoint}
	if err := tracking.CheckStorable(s); err != nil {
		return "", "", tracking.State{}, fmt.Errorf("notification payload %q: %w", abbreviate(payload), err)
	}
	return n.Schema, projection, s, nil
}

// currentSchema is the schema Projector's tables live in on a connection: the first existing
// schema of its search_path ("" when there is none).
const currentSchema = `SELECT coalesce(current_schema(), '')`

// Notify announces on channel, inside tx, that projection has committed s (for a rewind
// outside the store, such as an offline reset: s is then the zero state). Waiters in every
// process that LISTENs on channel with the same schema see s when tx commits.
func Notify(ctx context.Context, tx pgx.Tx, channel, projection string, s tracking.State) error {
	var schema string
	if err := tx.QueryRow(ctx, currentSchema).Scan(&schema); err != nil {
		return fmt.Errorf("postgres: notify %q of %v: read the current schema: %w", projection, s, err)
	}
	if _, err := tx.Exec(ctx, `SELECT pg_notify($1, $2)`, channel, encodeNotification(schema, projection, s)); err != nil {
		return fmt.Errorf("postgres: notify %q of %v: %w", projection, s, err)
	}
	return nil
}

// trackingSchema returns the schema of the store's tracking table, read once.
func (s *Store) trackingSchema(ctx context.Context) (string, error) {
	s.schemaMu.Lock()
	defer s.schemaMu.Unlock()
	if s.schemaRead {
		return s.schema, nil
	}
	if err := s.pool.QueryRow(ctx, currentSchema).Scan(&s.schema); err != nil {
		return "", fmt.Errorf("postgres: read the current schema: %w", err)
	}
	s.schemaRead = true
	return s.schema, nil
}
