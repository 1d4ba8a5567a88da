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
		`SELECT 1 FROM t WHERE a <@b AND a @@q AND tsv @@@q AND @-@p > 1 AND l ?<@ls AND l ?@lq`,
		`SELECT 1 FROM t WHERE a <@"data" AND b @@"metadata"`,
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

// PostgreSQL reads a run of operator characters as one operator, so =@data would be the
// operator =@, which does not exist: a parameter right after an operator, a parenthesis or a
// comma binds all the same.
func TestParseBindsParametersNextToOperatorsAndPunctuation(t *testing.T) {
	for sql, want := range map[string]string{
		"UPDATE t SET a=@data":                          "UPDATE t SET a=($1::jsonb)",
		"SELECT f(@data,@revision)":                     "SELECT f(($1::jsonb),($2::bigint))",
		"SELECT 1 WHERE r>=@revision AND r<>@revision":  "SELECT 1 WHERE r>=($1::bigint) AND r<>($1::bigint)",
		"SELECT r+@revision, r-@revision, r*@revision":  "SELECT r+($1::bigint), r-($1::bigint), r*($1::bigint)",
		"SELECT r/@revision, r%@revision, r=-@revision": "SELECT r/($1::bigint), r%($1::bigint), r=-($1::bigint)",
		"SELECT s||@stream_id, s<@@data":                "SELECT s||($1::text), s<@($2::jsonb)",
		"SELECT d@>@data, d<@ @data":                    "SELECT d@>($1::jsonb), d<@ ($1::jsonb)",
		"SELECT /* a comment */@data, 'q'||@event_type": "SELECT /* a comment */($1::jsonb), 'q'||($2::text)",
		"SELECT $$x$$||@event_id":                       "SELECT $$x$$||($1::text)",
	} {
		stmts, err := Parse(sql)
		if err != nil {
			t.Errorf("Parse(%q): %v", sql, err)
			continue
		}
		if stmts[0].SQL != want {
			t.Errorf("Parse(%q)\n got %s\nwant %s", sql, stmts[0].SQL, want)
		}
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct{ sql, want string }{
		{"INSERT INTO t VALUES (@name)", "unknown parameter @name (line 1)"},
		{"SELECT 1;\nSELECT @nope, @data, @other", "unknown parameter @nope (line 2), @other (line 2)"},
		{"SELECT $1", "positional parameters"},
		{"  ;  -- nothing\n", "no SQL statement"},
		{"UPDATE t SET a=@nope", "unknown parameter @nope (line 1)"},
		{"SELECT 1;\nSELECT 1 WHERE tags <@data", "line 2 of the SQL: <@data is ambiguous: PostgreSQL reads the operator <@ followed by a column data; write `<@ @data` for the parameter @data, or `<@\"data\"` for the column"},
		{"SELECT 1 WHERE v @@Metadata", "line 1 of the SQL: @@Metadata is ambiguous: PostgreSQL reads the operator @@ followed by a column Metadata; write `@@ @Metadata` for the parameter @metadata, or `@@\"metadata\"` for the column"},
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
