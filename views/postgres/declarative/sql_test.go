package declarative

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestParseRewritesNamedParameters(t *testing.T) {
	stmts, err := Parse("INSERT INTO t VALUES (@stream_id, @data->>'name', @stream_id, @revision)")
	if err != nil {
		t.Fatal(err)
	}
	if len(stmts) != 1 {
		t.Fatalf("got %d statements, want 1", len(stmts))
	}
	want := "INSERT INTO t VALUES (($1::text), ($2::jsonb)->>'name', ($1::text), ($3::bigint))"
	if stmts[0].SQL != want {
		t.Errorf("SQL\n got %s\nwant %s", stmts[0].SQL, want)
	}
	if !reflect.DeepEqual(stmts[0].Args, []string{"stream_id", "data", "revision"}) {
		t.Errorf("Args = %v", stmts[0].Args)
	}
}

func TestParseSplitsStatementsAndNumbersEachOnItsOwn(t *testing.T) {
	sql := "INSERT INTO a VALUES (@data);\n\n-- a comment; with a semicolon\nUPDATE b SET x = @revision WHERE y = 'a;b' AND z = $$c;@d$$;\n;"
	stmts, err := Parse(sql)
	if err != nil {
		t.Fatal(err)
	}
	if len(stmts) != 2 {
		t.Fatalf("got %d statements, want 2: %+v", len(stmts), stmts)
	}
	if stmts[1].Args[0] != "revision" || !strings.Contains(stmts[1].SQL, "x = ($1::bigint)") {
		t.Errorf("second statement = %+v", stmts[1])
	}
	if !strings.Contains(stmts[1].SQL, "$$c;@d$$") || !strings.Contains(stmts[1].SQL, "'a;b'") {
		t.Errorf("quoted text changed: %s", stmts[1].SQL)
	}
	if stmts[0].Line != 1 || stmts[1].Line != 3 {
		t.Errorf("lines = %d, %d; want 1, 3", stmts[0].Line, stmts[1].Line)
	}
}

func TestParseLeavesOperatorsQuotesAndCommentsAlone(t *testing.T) {
	for _, sql := range []string{
		`SELECT 1 WHERE '{"a":1}'::jsonb @> '{}' AND to_tsvector('x') @@ to_tsquery('x')`,
		`SELECT '@data', "@data", E'\'@data', /* @data */ 1 -- @data`,
		`SELECT $tag$ @data $tag$`,
		`SELECT 1 FROM t WHERE a <@ b`,
	} {
		stmts, err := Parse(sql)
		if err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
		if len(stmts[0].Args) != 0 || stmts[0].SQL != sql {
			t.Errorf("%s: rewritten to %s with %v", sql, stmts[0].SQL, stmts[0].Args)
		}
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct{ sql, want string }{
		{"INSERT INTO t VALUES (@name)", "unknown parameter @name (line 1)"},
		{"SELECT 1;\nSELECT @nope, @data, @other", "unknown parameter @nope (line 2), @other (line 2)"},
		{"SELECT $1", "positional parameters"},
		{"  ;  -- nothing\n", "no SQL statement"},
	} {
		_, err := Parse(tc.sql)
		var se *SQLError
		if !errors.As(err, &se) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Parse(%q) = %v, want an SQLError containing %q", tc.sql, err, tc.want)
		}
	}
}

func BenchmarkParse(b *testing.B) {
	sql := "INSERT INTO dog_tricks (dog_id, revision, trick) VALUES (@stream_id::uuid, @revision, @data->>'trick');\nUPDATE dogs SET tricks = tricks + 1 WHERE id = @stream_id::uuid;"
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(sql); err != nil {
			b.Fatal(err)
		}
	}
}
