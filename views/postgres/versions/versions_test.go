package versions

import (
	"reflect"
	"strings"
	"testing"
)

func dogs() Definition {
	return Definition{
		Name:   "dogs",
		Schema: "CREATE TABLE IF NOT EXISTS dogs (id text PRIMARY KEY, name text);",
		Reset:  "TRUNCATE dogs",
		Handlers: []Handler{
			{Topic: "Dog.Registered", SQL: "INSERT INTO dogs (id, name) VALUES (@stream_id, @data->>'name')"},
			{Topic: "Dog.Renamed", SQL: "UPDATE dogs SET name = @data->>'name' WHERE id = @stream_id"},
		},
	}
}

func TestFingerprintIgnoresLayoutCommentsAndHandlerOrder(t *testing.T) {
	a := dogs()
	b := dogs()
	b.Schema = "-- the dogs\nCREATE TABLE IF NOT EXISTS dogs (\n  id   text PRIMARY KEY, /* key */\n  name text\n);"
	b.Handlers[0], b.Handlers[1] = b.Handlers[1], b.Handlers[0]
	b.Handlers[1].SQL = "INSERT INTO dogs (id,name)\n\tVALUES (@stream_id, @data->>'name') -- new"
	if a.Fingerprint() != b.Fingerprint() {
		t.Fatalf("layout, comments and order changed the fingerprint: %s vs %s", a.Fingerprint(), b.Fingerprint())
	}
	if got := a.Changes(b); len(got) != 0 {
		t.Fatalf("Changes = %v, want none", got)
	}
	if n := len(a.Fingerprint()); n != FingerprintLength {
		t.Fatalf("fingerprint %q has %d digits", a.Fingerprint(), n)
	}
}

func TestFingerprintChangesWithContent(t *testing.T) {
	base := dogs()
	cases := map[string]func(d *Definition){
		"schema": func(d *Definition) { d.Schema = strings.Replace(d.Schema, "name text", "name text, tricks int", 1) },
		"reset":  func(d *Definition) { d.Reset = "DELETE FROM dogs" },
		`handlers."Dog.Renamed"`: func(d *Definition) {
			d.Handlers[1].SQL = "UPDATE dogs SET name = upper(@data->>'name') WHERE id = @stream_id"
		},
		"version": func(d *Definition) { d.Version = "2" },
		// A string constant keeps its spaces: they are data.
		`handlers."Dog.Registered"`: func(d *Definition) {
			d.Handlers[0].SQL = "INSERT INTO dogs (id, name) VALUES (@stream_id, @data->>'name ')"
		},
	}
	for key, change := range cases {
		d := dogs()
		change(&d)
		if d.Fingerprint() == base.Fingerprint() {
			t.Errorf("changing %s kept the fingerprint", key)
		}
		if got := base.Changes(d); !reflect.DeepEqual(got, []string{key}) {
			t.Errorf("changing %s: Changes = %v", key, got)
		}
	}
	d := dogs()
	d.Handlers = append(d.Handlers, Handler{Topic: "Dog.Died", SQL: "DELETE FROM dogs WHERE id = @stream_id"})
	if got := base.Changes(d); !reflect.DeepEqual(got, []string{`handlers."Dog.Died"`}) {
		t.Errorf("adding a handler: Changes = %v", got)
	}
}

func TestNormalizeKeepsQuotedText(t *testing.T) {
	got := Normalize("SELECT  'a -- b' ,\"Odd  Name\", $x$ /* not a comment */ $x$ -- gone\n FROM t /* gone */")
	want := `select 'a -- b' , "Odd  Name" , $x$ /* not a comment */ $x$ from t`
	if got != want {
		t.Fatalf("Normalize = %q, want %q", got, want)
	}
}

func TestQualified(t *testing.T) {
	cases := []struct {
		sql  string
		want []string
	}{
		{"INSERT INTO dogs (id) VALUES (@stream_id) ON CONFLICT (id) DO UPDATE SET name = excluded.name", nil},
		{"UPDATE dogs d SET n = d.n + 1 FROM tricks t WHERE t.dog = d.id", nil},
		{"SELECT extract(epoch FROM d.created), a IS DISTINCT FROM b.c FROM dogs d JOIN tricks t ON t.id = d.id", nil},
		{"CREATE TABLE IF NOT EXISTS dogs (id text REFERENCES owners(id)); CREATE INDEX IF NOT EXISTS i ON dogs (id)", nil},
		{"SELECT public.f(1)", nil},
		{"INSERT INTO public.dogs VALUES (1)", []string{"public.dogs"}},
		{`CREATE TABLE IF NOT EXISTS "Ops".dogs (id int)`, []string{"Ops.dogs"}},
		{"UPDATE app . dogs SET x = 1", []string{"app.dogs"}},
		{"DELETE FROM app.dogs", []string{"app.dogs"}},
		{"SELECT * FROM (SELECT 1 FROM app.t) s JOIN other.u ON true", []string{"app.t", "other.u"}},
		{"CREATE UNIQUE INDEX ix ON app.dogs (id)", []string{"app.dogs"}},
		{"CREATE TABLE t (o int REFERENCES app.owners (id))", []string{"app.owners"}},
		{"SET search_path = app; ALTER TABLE t SET SCHEMA app", []string{"search_path", "SET SCHEMA"}},
		{"-- INSERT INTO app.dogs\nSELECT 'INSERT INTO app.dogs'", nil},
	}
	for _, c := range cases {
		if got := Qualified(c.sql); !reflect.DeepEqual(got, c.want) {
			t.Errorf("Qualified(%q) = %q, want %q", c.sql, got, c.want)
		}
	}
}

func TestCheckUnqualifiedNamesThePart(t *testing.T) {
	if err := dogs().CheckUnqualified(); err != nil {
		t.Fatalf("unqualified definition refused: %v", err)
	}
	d := dogs()
	d.Handlers[1].SQL = "UPDATE app.dogs SET name = 'x'"
	err := d.CheckUnqualified()
	if err == nil || !strings.Contains(err.Error(), `handlers."Dog.Renamed" names app.dogs`) || !strings.Contains(err.Error(), `"dogs"`) {
		t.Fatalf("err = %v", err)
	}
}

func TestMarshalRoundTrip(t *testing.T) {
	d := dogs()
	d.Version = "7"
	b, err := d.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	back, err := Unmarshal(b)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, d) || back.Fingerprint() != d.Fingerprint() {
		t.Fatalf("round trip: %+v", back)
	}
	if _, err := Unmarshal([]byte("{")); err == nil {
		t.Fatal("bad JSON accepted")
	}
}
