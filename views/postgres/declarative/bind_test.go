package declarative_test

import (
	"context"
	"testing"
	"time"

	"github.com/projector-dev/projector/projection"
	"github.com/projector-dev/projector/views/postgres/declarative"
)

// Every parameter binds its own field of the event, in statements that use them in different
// orders, several times, or not at all.
func TestHandleBindsEveryParameterToItsField(t *testing.T) {
	ctx := context.Background()
	c := testDB(t)
	p, err := declarative.New(declarative.Spec{
		Name: "seen",
		Schema: `CREATE TABLE seen (stream text, type text, id text, revision bigint, commit bigint, prepare bigint,
			created timestamptz, content_type text, data jsonb, metadata jsonb, again text, constant int);`,
		Handlers: []declarative.Handler{{Topic: "Seen", SQL: `
INSERT INTO seen (stream, type, id, revision, commit, prepare, created, content_type, data, metadata)
VALUES (@stream_id, @event_type, @event_id, @revision, @commit_position, @prepare_position, @created, @content_type, @data, @metadata);
UPDATE seen SET again = @metadata->>'by' || '/' || @stream_id || '/' || @stream_id || '/' || @revision WHERE id = @event_id;
UPDATE seen SET constant = 7;`}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Migrate(ctx, c); err != nil {
		t.Fatal(err)
	}
	e := projection.Event{
		ID: "0b6a5c3e-0000-4000-8000-000000000042", Type: "Seen", Stream: "dog-1", Revision: 3,
		Position: projection.Position{Commit: 1 << 40, Prepare: 1<<40 - 5}, Data: []byte(` {"a": 1} `),
		Metadata: []byte(`{"by":"me"}`), ContentType: "application/json", Created: time.Date(2026, 1, 2, 3, 4, 5, 6000, time.UTC),
	}
	if err := apply(t, c, p, e); err != nil {
		t.Fatal(err)
	}
	var got struct {
		stream, typ, id, contentType, data, metadata, again string
		revision, commit, prepare                           int64
		created                                             time.Time
		constant                                            int
	}
	err = c.QueryRow(ctx, `SELECT stream, type, id, revision, commit, prepare, created, content_type, data::text, metadata::text, again, constant FROM seen`).
		Scan(&got.stream, &got.typ, &got.id, &got.revision, &got.commit, &got.prepare, &got.created, &got.contentType, &got.data, &got.metadata, &got.again, &got.constant)
	if err != nil {
		t.Fatal(err)
	}
	if got.stream != e.Stream || got.typ != e.Type || got.id != e.ID || got.revision != 3 || got.commit != 1<<40 || got.prepare != 1<<40-5 ||
		!got.created.Equal(e.Created) || got.contentType != e.ContentType || got.data != `{"a": 1}` || got.metadata != `{"by": "me"}` ||
		got.again != "me/dog-1/dog-1/3" || got.constant != 7 {
		t.Errorf("row = %+v, want the fields of %+v", got, e)
	}
}

// A statement binds only its own parameters when a later statement of the handler uses more.
func TestHandleBindsAParameterFirstUsedByALaterStatement(t *testing.T) {
	ctx := context.Background()
	c := testDB(t)
	p, err := declarative.New(declarative.Spec{
		Name:   "later",
		Schema: `CREATE TABLE later (stream text PRIMARY KEY, revision bigint, type text);`,
		Handlers: []declarative.Handler{{Topic: "Later", SQL: `
INSERT INTO later (stream) VALUES (@stream_id);
UPDATE later SET revision = @revision WHERE stream = @stream_id;
UPDATE later SET type = @event_type WHERE stream = @stream_id AND revision = @revision;`}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Migrate(ctx, c); err != nil {
		t.Fatal(err)
	}
	e := event("Later", 4, 100, `{}`)
	if err := apply(t, c, p, e); err != nil {
		t.Fatal(err)
	}
	var stream, typ string
	var rev int64
	if err := c.QueryRow(ctx, `SELECT stream, revision, type FROM later`).Scan(&stream, &rev, &typ); err != nil {
		t.Fatal(err)
	}
	if stream != e.Stream || rev != 4 || typ != "Later" {
		t.Errorf("row = %s, %d, %s; want %s, 4, Later", stream, rev, typ, e.Stream)
	}
}
