package postgres_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/projector-dev/projector/projection"
	"github.com/projector-dev/projector/tracking"
	"github.com/projector-dev/projector/views/postgres"
	"github.com/projector-dev/projector/views/postgres/declarative"
	"github.com/projector-dev/projector/views/postgres/versions"
)

// benchDogs dogs with benchTricks tricks each: 200,000 events.
const benchDogs, benchTricks = 40_000, 4

// schoolWithIndexes is the training-school dogs view with two secondary indexes, a dog's
// name and a trick.
func schoolWithIndexes() versions.Definition {
	return versions.Definition{Name: "dogs",
		Schema: `CREATE TABLE IF NOT EXISTS dogs (id uuid PRIMARY KEY, name text NOT NULL, registered_at timestamptz NOT NULL,
				tricks integer NOT NULL DEFAULT 0);
			CREATE TABLE IF NOT EXISTS dog_tricks (dog_id uuid NOT NULL, revision bigint NOT NULL, trick text NOT NULL,
				PRIMARY KEY (dog_id, revision));
			CREATE INDEX IF NOT EXISTS dogs_by_name ON dogs (name);
			CREATE INDEX IF NOT EXISTS dog_tricks_by_trick ON dog_tricks (trick)`,
		Handlers: []versions.Handler{
			{Topic: "__main__:Dog.Registered", SQL: `INSERT INTO dogs (id, name, registered_at) VALUES (@stream_id::uuid, @data->>'name', @created)`},
			{Topic: "__main__:Dog.TrickAdded", SQL: `INSERT INTO dog_tricks (dog_id, revision, trick) VALUES (@stream_id::uuid, @revision, @data->>'trick');
				UPDATE dogs SET tricks = tricks + 1 WHERE id = @stream_id::uuid`},
		}}
}

// schoolEvents returns the events of benchDogs dogs registered with benchTricks tricks each, in
// batches of 1000.
func schoolEvents() [][]projection.Event {
	var all []projection.Event
	created := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for d := range benchDogs {
		stream := fmt.Sprintf("00000000-0000-4000-8000-%012d", d)
		for rev := range benchTricks + 1 {
			p := uint64(len(all)+1) * 100
			e := projection.Event{ID: fmt.Sprintf("00000000-0000-4000-9000-%012d", len(all)), Stream: stream, Revision: uint64(rev),
				Position: projection.Position{Commit: p, Prepare: p}, ContentType: "application/json", Created: created,
				Type: "__main__:Dog.TrickAdded", Data: fmt.Appendf(nil, `{"trick":"trick %d"}`, (d+rev)%50)}
			if rev == 0 {
				e.Type, e.Data = "__main__:Dog.Registered", fmt.Appendf(nil, `{"name":"dog %d"}`, d%5000)
			}
			all = append(all, e)
		}
	}
	var batches [][]projection.Event
	for len(all) > 0 {
		n := min(1000, len(all))
		batches, all = append(batches, all[:n]), all[n:]
	}
	return batches
}

// BenchmarkShadowBuildIndexes measures the build of a new version of the training-school dogs
// view (two secondary indexes) in its shadow schema over 200,000 events, applied one at a time
// in batches of 1000 as the daemon does: with its secondary indexes present during the build
// (present-s), and with them deferred, created once the build is done, before the swap
// (deferred-s, of which deferred-index-s creating them). deferred/present is their ratio. Each
// iteration builds both, each in a database of its own, taking turns to go first.
//
//	go test -run '^$' -bench BenchmarkShadowBuildIndexes -benchtime 4x -count 2 ./views/postgres/
func BenchmarkShadowBuildIndexes(b *testing.B) {
	batches := schoolEvents()
	var present, deferred, indexing time.Duration
	var presentSize, deferredSize int64
	for i := range b.N {
		for _, deferIndexes := range [][]bool{{false, true}, {true, false}}[i%2] { // alternating which goes first
			build, idx, size := shadowBuild(b, batches, deferIndexes)
			if deferIndexes {
				deferred += build
				indexing += idx
				deferredSize = size
			} else {
				present += build
				presentSize = size
			}
		}
	}
	b.ReportMetric(float64(presentSize)/(1<<20), "present-index-MiB")
	b.ReportMetric(float64(deferredSize)/(1<<20), "deferred-index-MiB")
	b.ReportMetric(present.Seconds()/float64(b.N), "present-s")
	b.ReportMetric(deferred.Seconds()/float64(b.N), "deferred-s")
	b.ReportMetric(indexing.Seconds()/float64(b.N), "deferred-index-s")
	b.ReportMetric(deferred.Seconds()/present.Seconds(), "deferred/present")
}

// shadowBuild builds the shadow of schoolWithIndexes from batches, with its secondary indexes
// deferred or (created at once) present, and returns how long the whole build took, and of
// it the creation of the deferred indexes, and the size of the secondary indexes.
func shadowBuild(b *testing.B, batches [][]projection.Event, deferIndexes bool) (total, indexing time.Duration, size int64) {
	b.StopTimer()
	ctx := context.Background()
	store, pool := versionedStore(b)
	def := schoolWithIndexes()
	id := def.Fingerprint()
	if err := store.RecordVersion(ctx, def, id, postgres.Building); err != nil {
		b.Fatal(err)
	}
	p, err := declarative.New(declarative.Spec{Name: "dogs", Schema: def.Schema, Handlers: []declarative.Handler{
		{Topic: def.Handlers[0].Topic, SQL: def.Handlers[0].SQL}, {Topic: def.Handlers[1].Topic, SQL: def.Handlers[1].SQL}}})
	if err != nil {
		b.Fatal(err)
	}
	name := postgres.VersionTracking("dogs", id)
	if err := store.Guard(ctx, name, "dogs", id, postgres.Building); err != nil {
		b.Fatal(err)
	}
	b.StartTimer()
	began := time.Now()
	deferredIdx, err := store.PrepareShadow(ctx, def, id)
	if err != nil || len(deferredIdx) != 2 {
		b.Fatalf("PrepareShadow: %v deferred, %v", deferredIdx, err)
	}
	if !deferIndexes {
		if _, _, err := store.BuildDeferredIndexes(ctx, "dogs", id); err != nil {
			b.Fatal(err)
		}
	}
	var prev tracking.State
	for _, evs := range batches {
		next := tracking.State{Last: evs[len(evs)-1].Position}
		err := store.Apply(ctx, name, prev, next, func(ctx context.Context, tx pgx.Tx) error {
			for _, e := range evs {
				if err := p.Handle(ctx, tx, e); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
		prev = next
	}
	if deferIndexes {
		built, took, err := store.BuildDeferredIndexes(ctx, "dogs", id)
		if err != nil || len(built) != 2 {
			b.Fatalf("BuildDeferredIndexes: %v, %v", built, err)
		}
		indexing = took
	}
	total = time.Since(began)
	b.StopTimer()
	shadow := postgres.ShadowSchema("dogs", id)
	if n := count(b, pool, `SELECT count(*) FROM `+pgx.Identifier{shadow, "dog_tricks"}.Sanitize()); n != benchDogs*benchTricks {
		b.Fatalf("%d tricks built, want %d", n, benchDogs*benchTricks)
	}
	if n := count(b, pool, `SELECT count(*) FROM pg_indexes WHERE schemaname = '`+shadow+`'`); n != 4 {
		b.Fatalf("%d indexes in the shadow, want 4", n)
	}
	err = pool.QueryRow(ctx, `SELECT sum(pg_relation_size(format('%I.%I', schemaname, indexname)::regclass))::bigint
		FROM pg_indexes WHERE schemaname = $1 AND indexname IN ('dogs_by_name', 'dog_tricks_by_trick')`, shadow).Scan(&size)
	if err != nil {
		b.Fatal(err)
	}
	return total, indexing, size
}
