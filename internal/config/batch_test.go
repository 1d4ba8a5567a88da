package config_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/projector-dev/projector/internal/config"
	"github.com/projector-dev/projector/projection"
)

const batchFile = `projections:
  - name: dogs
    batch:
      size: 500
      sql: |
        INSERT INTO dogs (id, name)
          SELECT stream_id, data->>'name' FROM events WHERE event_type = 'A';
    topics: ["A", "B"]
`

func TestABatchProjectionLoads(t *testing.T) {
	cfg, err := config.Parse("p.yaml", []byte(batchFile))
	if err != nil {
		t.Fatal(err)
	}
	p := cfg.Projections[0]
	if p.Options.BatchSize != 500 || len(p.Topics) != 2 || p.Topics[1] != "B" || !strings.HasPrefix(p.Batch, "INSERT INTO dogs") || len(p.Handlers) != 0 {
		t.Fatalf("projection = %+v", p)
	}
	if _, ok := p.Compiled.Runnable().(projection.BatchProjection[pgx.Tx]); !ok || strings.Join(p.Compiled.Topics(), ",") != "A,B" {
		t.Errorf("compiled = %T with topics %v, want a batch projection of A and B", p.Compiled.Runnable(), p.Compiled.Topics())
	}
}

func TestBatchValidationErrors(t *testing.T) {
	for _, tc := range []struct {
		name, yaml string
		want       []string
	}{
		{"handlers and batch", "projections:\n  - name: a\n    topics: [T]\n    batch: {sql: SELECT 1}\n    handlers: {T: SELECT 1}\n",
			[]string{`p.yaml:5: projection "a": handlers: give either handlers, or topics and batch.sql; not both`}},
		{"batch without topics", "projections:\n  - name: a\n    batch:\n      sql: SELECT 1\n",
			[]string{`p.yaml:2: projection "a": topics: missing; batch.sql runs over the events of the event types listed here`}},
		{"topics without batch", "projections:\n  - name: a\n    topics: [T]\n",
			[]string{`p.yaml:2: projection "a": batch.sql: missing; topics need the SQL that runs once per batch over their events`}},
		{"batch as text with a parameter", "projections:\n  - name: a\n    topics: [T]\n    batch: |\n      SELECT @data\n",
			[]string{`p.yaml:5: projection "a": batch.sql: @data: batch SQL takes no parameters; read the batch's events from the events relation instead (one row per event, with the columns seq, stream_id, event_type, event_id, revision, commit_position, prepare_position, created, content_type, data, metadata)`}},
		{"a parameter in batch SQL", "projections:\n  - name: a\n    topics: [T]\n    batch:\n      sql: |\n        SELECT 1;\n        INSERT INTO x SELECT @data;\n",
			[]string{`p.yaml:7: projection "a": batch.sql: @data: batch SQL takes no parameters; read the batch's events from the events relation instead (one row per event, with the columns seq, stream_id, event_type, event_id, revision, commit_position, prepare_position, created, content_type, data, metadata)`}},
		{"empty batch SQL", "projections:\n  - name: a\n    topics: [T]\n    batch: {sql: \"\"}\n", []string{`p.yaml:4: projection "a": batch.sql: empty SQL`}},
		{"topics not a list", "projections:\n  - name: a\n    topics: T\n    batch: {sql: SELECT 1}\n", []string{`p.yaml:3: projection "a": topics: must be a list of event types`}},
		{"empty topics", "projections:\n  - name: a\n    topics: []\n    batch: {sql: SELECT 1}\n", []string{`p.yaml:3: projection "a": topics: empty; list the event types the batch SQL reads`}},
		{"duplicate topic", "projections:\n  - name: a\n    topics:\n      - T\n      - T\n    batch: {sql: SELECT 1}\n", []string{`p.yaml:5: projection "a": topics[1]: event type "T" given twice`}},
		{"empty topic", "projections:\n  - name: a\n    topics: [T, \"\"]\n    batch: {sql: SELECT 1}\n", []string{`p.yaml:3: projection "a": topics[1]: must be a non-empty event type`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := config.Parse("p.yaml", []byte(tc.yaml))
			var v *config.ValidationError
			if !errors.As(err, &v) || len(v.Errors) != len(tc.want) {
				t.Fatalf("got %v, want %d errors", err, len(tc.want))
			}
			for i, w := range tc.want {
				if got := v.Errors[i].Error(); !strings.HasPrefix(got, w) {
					t.Errorf("error %d:\n got %s\nwant %s", i, got, w)
				}
			}
		})
	}
}

// "batch: TEXT" is short for "batch: {sql: TEXT}", as the and the docs' first example
// write it.
func TestBatchTextIsShortForBatchSQL(t *testing.T) {
	short, err := config.Parse("p.yaml", []byte("projections:\n  - name: a\n    topics: [T]\n    batch: |\n      INSERT INTO x SELECT seq FROM events\n"))
	if err != nil {
		t.Fatal(err)
	}
	long, err := config.Parse("p.yaml", []byte("projections:\n  - name: a\n    topics: [T]\n    batch:\n      sql: |\n        INSERT INTO x SELECT seq FROM events\n"))
	if err != nil {
		t.Fatal(err)
	}
	if s, l := short.Projections[0], long.Projections[0]; s.Batch != l.Batch || s.Batch == "" || s.Options != l.Options {
		t.Errorf("batch: TEXT = %q %+v; batch: {sql: TEXT} = %q %+v", s.Batch, s.Options, l.Batch, l.Options)
	}
}
