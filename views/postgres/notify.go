package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/projector-dev/projector/tracking"
)

// The payload of a tracking notification is the committed tracking state of one projection,
// with its generation, so that waiters compare against it without reading the tracking row:
//
//	{"schema":"public","commit":120,"prepare":120,"checkpoint":0,"generation":2} dogs
//
// a JSON object without spaces (a space in the schema's name is written \u0020), one space,
// then the projection's name (which may hold spaces). Schema is the schema of the tracking
// table (the first of the search_path): several deployments may share a database and a channel
// with tables in schemas of their own, and a listener applies only the notifications of its own
// schema. Generation is the projection's row of projector_tracking_generations (0 without one):
// a rewind, reset or swap increments it, and a listener ignores the states of a generation older
// than one it has seen, so a notification committed before a rewind but delivered after it does
// not bring the old position back (see hub.offer). The name comes last, after the first space,
// as in the payload of earlier versions ("<position> <projection>"), whose listeners re-read the
// row of the projection named there: they keep waking during a rolling upgrade. The listeners of
// the version before generations refuse the unknown field and re-read the rows of the
// projections with waiters; a payload of theirs, without a generation, makes a listener of this
// version re-read the projection's row rather than trust a state of unknown generation. This
// file is the only place that writes or reads the payload.
type notification struct {
	Schema     string  `json:"schema"`
	Commit     uint64  `json:"commit"`
	Prepare    uint64  `json:"prepare"`
	Checkpoint uint64  `json:"checkpoint"`
	Generation *uint64 `json:"generation,omitempty"`
}

// notice is a decoded notification.
type notice struct {
	schema, projection string
	state              tracking.State
	generation         uint64
	// generational is false for the payload of a version before generations: its state may
	// be of any generation.
	generational bool
}

// notificationParts returns the payload announcing that projection, tracked in schema, has
// committed s, cut where its generation goes: prefix + generation + suffix.
func notificationParts(schema, projection string, s tracking.State) (prefix, suffix string) {
	b, err := json.Marshal(notification{Schema: schema, Commit: s.Last.Commit, Prepare: s.Last.Prepare, Checkpoint: s.Checkpoint})
	if err != nil {
		panic(fmt.Sprintf("postgres: encode a notification: %v", err)) // a string and numbers always encode
	}
	// Compact JSON has spaces only inside strings, where \u0020 means the same.
	object := strings.ReplaceAll(string(b), " ", `\u0020`)
	return strings.TrimSuffix(object, "}") + `,"generation":`, "} " + projection
}

// encodeNotification returns the payload announcing that projection, tracked in schema, has
// committed s in generation.
func encodeNotification(schema, projection string, s tracking.State, generation uint64) string {
	prefix, suffix := notificationParts(schema, projection, s)
	return prefix + strconv.FormatUint(generation, 10) + suffix
}

// advanceNotification returns the statement, and its arguments, that notify channel inside a
// batch's transaction that projection, tracked in schema, has committed s: the payload takes the
// projection's generation in the same statement, after the batch's tracking advance, so it is
// the generation of the row the batch advanced.
func advanceNotification(channel, schema, projection string, s tracking.State) (string, []any) {
	prefix, suffix := notificationParts(schema, projection, s)
	return `SELECT pg_notify($1, $2 || coalesce((SELECT generation FROM projector_tracking_generations WHERE projection = $4), 0) || $3)`,
		[]any{channel, prefix, suffix, projection}
}

// decodeNotification parses a payload written by encodeNotification (or by the version before
// generations), with an error naming what is wrong for anything else (a payload of an earlier
// version, or of another program on the channel).
func decodeNotification(payload string) (notice, error) {
	state, projection, ok := strings.Cut(payload, " ")
	if !ok || projection == "" {
		return notice{}, fmt.Errorf("notification payload %q: want a tracking state, a space and the projection's name", abbreviate(payload))
	}
	dec := json.NewDecoder(strings.NewReader(state))
	dec.DisallowUnknownFields()
	var n notification
	if err := dec.Decode(&n); err != nil {
		return notice{}, fmt.Errorf("notification payload %q: %q is not a tracking state: %w", abbreviate(payload), state, err)
	}
	if dec.More() {
		return notice{}, fmt.Errorf("notification payload %q: text after the tracking state", abbreviate(payload))
	}
	s := tracking.State{Last: tracking.Position{Commit: n.Commit, Prepare: n.Prepare}, Checkpoint: n.Checkpoint}
	if err := tracking.CheckStorable(s); err != nil {
		return notice{}, fmt.Errorf("notification payload %q: %w", abbreviate(payload), err)
	}
	out := notice{schema: n.Schema, projection: projection, state: s, generational: n.Generation != nil}
	if n.Generation != nil {
		out.generation = *n.Generation
	}
	return out, nil
}

// currentSchema is the schema Projector's tables live in on a connection: the first existing
// schema of its search_path ("" when there is none).
const currentSchema = `SELECT coalesce(current_schema(), '')`

// Notify announces on channel, inside tx, that projection was rewound to s (for a rewind
// outside the store, such as an offline reset: s is then the zero state). It increments the
// projection's generation, so that waiters in every process that LISTENs on channel with the
// same schema see s when tx commits, and no state committed before it afterwards.
func Notify(ctx context.Context, tx pgx.Tx, channel, projection string, s tracking.State) error {
	_, err := notifyRewound(ctx, tx, channel, projection, s)
	return err
}

// notifyRewound is Notify, returning the projection's new generation.
func notifyRewound(ctx context.Context, tx pgx.Tx, channel, projection string, s tracking.State) (uint64, error) {
	var schema string
	if err := tx.QueryRow(ctx, currentSchema).Scan(&schema); err != nil {
		return 0, fmt.Errorf("postgres: notify %q of %v: read the current schema: %w", projection, s, err)
	}
	prefix, suffix := notificationParts(schema, projection, s)
	var generation int64
	if err := tx.QueryRow(ctx, `WITH g AS (`+nextGeneration+`)
		SELECT g.generation, pg_notify($2, $3 || g.generation || $4) FROM g`,
		projection, channel, prefix, suffix).Scan(&generation, nil); err != nil {
		return 0, fmt.Errorf("postgres: notify %q of %v: %w", projection, s, err)
	}
	return uint64(generation), nil
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
