package config_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/projector-dev/projector/internal/config"
	"github.com/projector-dev/projector/projection"
	"github.com/projector-dev/projector/views/postgres/declarative"
)

func TestLoadTheExamples(t *testing.T) {
	for _, f := range []string{"dog_counts.yaml", "training_school.yaml"} {
		cfg, err := config.Load(filepath.Join("..", "..", "examples", f))
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		for _, p := range cfg.Projections {
			if p.Compiled == nil || len(p.Compiled.Topics()) != len(p.Handlers) {
				t.Errorf("%s: %s not compiled", f, p.Name)
			}
		}
	}
	cfg, _ := config.Load(filepath.Join("..", "..", "examples", "dog_counts.yaml"))
	p := cfg.Projections[0]
	want := projection.ProjectionOptions{BatchSize: 1000, BatchInterval: 10 * time.Millisecond,
		OnError: projection.ErrorPolicy{Policy: "stop", Retries: 5, Backoff: time.Second, MaxBackoff: 30 * time.Second}, Start: projection.Start{Kind: projection.StartBeginning}}
	if p.Name != "dog_counts" || p.Options != want {
		t.Errorf("got %s %+v\nwant dog_counts %+v", p.Name, p.Options, want)
	}
	if len(p.Handlers) != 2 || p.Handlers[0].Topic != "__main__:Dog.Registered" || p.Handlers[1].Topic != "__main__:Dog.TrickAdded" {
		t.Errorf("handlers = %+v", p.Handlers)
	}
	if !strings.Contains(p.Schema, "CREATE TABLE IF NOT EXISTS dog_counts") || strings.TrimSpace(p.Reset) != "TRUNCATE dog_counts;" {
		t.Errorf("schema %q reset %q", p.Schema, p.Reset)
	}
}

func TestDefaultsAndStartPosition(t *testing.T) {
	cfg, err := config.Parse("p.yaml", []byte(`
projections:
  - name: a
    start: 12345
    handlers: {T: "SELECT 1"}
  - name: b
    start: end
    on_error: {policy: skip}
    handlers: {T: "SELECT 1"}
`))
	if err != nil {
		t.Fatal(err)
	}
	a, b := cfg.Projections[0].Options, cfg.Projections[1].Options
	if a.Start != (projection.Start{Kind: projection.StartAfter, Position: projection.Position{Commit: 12345, Prepare: 12345}}) || a.BatchSize != projection.DefaultBatchSize || a.OnError.Policy != projection.PolicyStop {
		t.Errorf("a = %+v", a)
	}
	if b.Start.Kind != projection.StartEnd || b.OnError.Policy != projection.PolicySkip || b.OnError.Backoff != projection.DefaultRetryBackoff {
		t.Errorf("b = %+v", b)
	}
}

// The file's keys become the runner's options as they are; a first backoff longer than the
// default cap raises the cap.
func TestOptionsFromTheFile(t *testing.T) {
	cfg, err := config.Parse("p.yaml", []byte(`projections:
  - name: a
    batch: {size: 7, interval: 3ms}
    on_error: {policy: retry, retries: 2, backoff: 250ms}
    start: 4242
    handlers: {T: SELECT 1}
  - name: b
    start: end
    on_error: {policy: skip, backoff: 1m}
    handlers: {T: SELECT 1}
`))
	if err != nil {
		t.Fatal(err)
	}
	a, b := cfg.Projections[0].Options, cfg.Projections[1].Options
	want := projection.ProjectionOptions{
		BatchSize: 7, BatchInterval: 3 * time.Millisecond,
		Start:   projection.Start{Kind: projection.StartAfter, Position: projection.Position{Commit: 4242, Prepare: 4242}},
		OnError: projection.ErrorPolicy{Policy: projection.PolicyRetry, Retries: 2, Backoff: 250 * time.Millisecond, MaxBackoff: projection.DefaultMaxBackoff},
	}
	if a != want {
		t.Errorf("a = %+v\nwant %+v", a, want)
	}
	if b.Start.Kind != projection.StartEnd || b.OnError.Policy != projection.PolicySkip || b.OnError.MaxBackoff != time.Minute || b.BatchSize != projection.DefaultBatchSize {
		t.Errorf("b = %+v", b)
	}
}

// Every validation error names the file, the line, the projection and the key.
func TestValidationErrors(t *testing.T) {
	for _, tc := range []struct {
		name, yaml string
		want       []string
	}{
		{"unknown top-level key", "projection:\n  - name: a\n", []string{"p.yaml:1: projection: unknown key; the keys here are projections"}},
		{"unknown projection key", "projections:\n  - name: a\n    handler: {T: SELECT 1}\n    handlers: {T: SELECT 1}\n",
			[]string{`p.yaml:3: projection "a": handler: unknown key; the keys here are batch, handlers, keep_archives, name, on_change, on_dependency, on_error, partition_by, partitions, reset, schema, start, topics, version`}},
		{"unknown nested key", "projections:\n  - name: a\n    batch: {size: 10, timeout: 1s}\n    handlers: {T: SELECT 1}\n",
			[]string{`p.yaml:3: projection "a": batch.timeout: unknown key; the keys here are interval, size`}},
		{"duplicate names", "projections:\n  - name: a\n    handlers: {T: SELECT 1}\n  - name: a\n    handlers: {T: SELECT 1}\n",
			[]string{`p.yaml:4: projection "a": name: duplicate projection name (first at line 2)`}},
		{"bad duration", "projections:\n  - name: a\n    batch: {interval: 10}\n    on_error: {backoff: soon}\n    handlers: {T: SELECT 1}\n",
			[]string{`p.yaml:3: projection "a": batch.interval: must be a positive duration such as 10ms, 1s or 2m, not "10"`,
				`p.yaml:4: projection "a": on_error.backoff: must be a positive duration`}},
		{"empty handlers", "projections:\n  - name: a\n    handlers: {}\n", []string{`p.yaml:3: projection "a": handlers: empty`}},
		{"missing handlers", "projections:\n  - name: a\n", []string{`p.yaml:2: projection "a": handlers: missing`}},
		{"empty handler SQL", "projections:\n  - name: a\n    handlers:\n      T: \"\"\n", []string{`p.yaml:4: projection "a": handlers."T": empty SQL`}},
		{"unknown parameter", "projections:\n  - name: a\n    handlers:\n      T: |\n        SELECT 1;\n        INSERT INTO x VALUES (@name);\n",
			[]string{`p.yaml:6: projection "a": handlers."T": unknown parameter @name (line 2); the parameters are @commit_position`}},
		{"parameter glued to an operator ending in @", "projections:\n  - name: a\n    handlers:\n      T: |\n        SELECT 1;\n        UPDATE x SET n = 1 WHERE tags <@data;\n",
			[]string{`p.yaml:6: projection "a": handlers."T": <@data is ambiguous: PostgreSQL reads the operator <@ followed by a column data; write ` + "`<@ @data`" + ` for the parameter @data, or ` + "`<@\"data\"`" + ` for the column`}},
		{"unknown parameter right after an operator", "projections:\n  - name: a\n    handlers:\n      T: UPDATE x SET n=@nmae\n",
			[]string{`p.yaml:4: projection "a": handlers."T": unknown parameter @nmae (line 1); the parameters are @commit_position`}},
		{"bad name", "projections:\n  - name: Dog-Counts\n    handlers: {T: SELECT 1}\n", []string{`p.yaml:2: projection "Dog-Counts": name: must be 1 to 63 characters of a-z, 0-9 and _`}},
		{"missing name", "projections:\n  - handlers: {T: SELECT 1}\n", []string{`p.yaml:2: projection "#1": name: missing`}},
		{"bad policy", "projections:\n  - name: a\n    on_error: {policy: ignore}\n    handlers: {T: SELECT 1}\n", []string{`p.yaml:3: projection "a": on_error.policy: unknown policy "ignore"; use stop, retry, skip or park`}},
		{"bad retries", "projections:\n  - name: a\n    on_error: {retries: -1}\n    handlers: {T: SELECT 1}\n", []string{`on_error.retries: must be a whole number ≥ 1, not "-1"`}},
		{"zero retries", "projections:\n  - name: a\n    on_error: {policy: retry, retries: 0}\n    handlers: {T: SELECT 1}\n", []string{`p.yaml:3: projection "a": on_error.retries: must be a whole number ≥ 1, not "0" (for no retries, use policy stop)`}},
		{"bad batch size", "projections:\n  - name: a\n    batch: {size: 0}\n    handlers: {T: SELECT 1}\n", []string{`p.yaml:3: projection "a": batch.size: must be a whole number ≥ 1, not "0"`}},
		{"bad partitions", "projections:\n  - name: a\n    partitions: 300\n    handlers: {T: SELECT 1}\n", []string{`p.yaml:3: projection "a": partitions: must be a whole number from 1 to 256, not "300"`}},
		{"bad partition_by", "projections:\n  - name: a\n    partitions: 2\n    partition_by: tenant\n    handlers: {T: SELECT 1}\n", []string{`p.yaml:4: projection "a": partition_by: "tenant": want stream (the default) or data. followed by a field path`}},
		{"park with partitions by data", "projections:\n  - name: a\n    partitions: 2\n    partition_by: data.tenant\n    on_error: {policy: park}\n    handlers: {T: SELECT 1}\n", []string{`p.yaml:4: projection "a": partition_by: "data.tenant" with on_error.policy park: parking holds a stream's later events behind its failed one, so a stream's events must stay in one partition; use partition_by stream, or another policy`}},
		{"partition_by without partitions", "projections:\n  - name: a\n    partition_by: data.tenant\n    handlers: {T: SELECT 1}\n", []string{`p.yaml:3: projection "a": partition_by: needs partitions of 2 or more`}},
		{"bad start", "projections:\n  - name: a\n    start: middle\n    handlers: {T: SELECT 1}\n", []string{`p.yaml:3: projection "a": start: must be beginning, end or a commit position, not "middle"`}},
		{"duplicate key", "projections:\n  - name: a\n    schema: x\n    schema: y\n    handlers: {T: SELECT 1}\n", []string{`p.yaml:4: projection "a": schema: key given twice`}},
		{"duplicate topic", "projections:\n  - name: a\n    handlers:\n      T: SELECT 1\n      T: SELECT 2\n", []string{`p.yaml:5: projection "a": handlers."T": event type given twice`}},
		{"not a list", "projections: {name: a}\n", []string{`p.yaml:1: projections: must be a list`}},
		{"empty list", "projections: []\n", []string{`p.yaml:1: projections: the list is empty`}},
		{"empty file", "", []string{`p.yaml: invalid YAML: the file is empty`}},
		{"invalid YAML", "projections:\n  - name: a\n   bad: [\n", []string{`p.yaml:1: invalid YAML: did not find expected '-' indicator`}},
		{"second YAML document", "projections:\n  - name: a\n    handlers: {T: SELECT 1}\n---\nprojections:\n  - name: b\n    handlers: {T: SELECT 1}\n",
			[]string{`p.yaml:4: another YAML document starts here (after ---); the projections file is one document: list every projection under its one projections key`}},
		{"third YAML document after an empty second", "projections:\n  - name: a\n    handlers: {T: SELECT 1}\n---\n# nothing\n---\n- name: b\n",
			[]string{`p.yaml:6: another YAML document starts here (after ---)`}},
		{"invalid YAML in a second document", "projections:\n  - name: a\n    handlers: {T: SELECT 1}\n---\nb: [\n",
			[]string{`p.yaml:5: invalid YAML: did not find expected node content`}},
		{"several errors at once", "projections:\n  - name: a\n    batch: {size: x}\n    handlers: {}\n  - name: b\n    color: red\n    handlers: {T: SELECT 1}\n",
			[]string{`p.yaml:3: projection "a": batch.size`, `p.yaml:4: projection "a": handlers: empty`, `p.yaml:6: projection "b": color: unknown key`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := config.Parse("p.yaml", []byte(tc.yaml))
			if err == nil {
				t.Fatal("no error")
			}
			if !config.IsValidation(err) {
				t.Errorf("not a validation error: %T", err)
			}
			var v *config.ValidationError
			if !errors.As(err, &v) || len(v.Errors) != len(tc.want) {
				t.Fatalf("got %v, want %d errors", err, len(tc.want))
			}
			for i, w := range tc.want {
				if !strings.Contains(v.Errors[i].Error(), w) {
					t.Errorf("error %d:\n got %s\nwant %s", i, v.Errors[i], w)
				}
			}
		})
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := config.Load(filepath.Join(t.TempDir(), "nope.yaml"))
	if !config.IsValidation(err) || !strings.Contains(err.Error(), "nope.yaml: cannot read the projections file: no such file or directory") {
		t.Fatalf("err = %v", err)
	}
}

func TestSettings(t *testing.T) {
	env := map[string]string{"KURRENTDB_URI": "kurrentdb://h:2113?tls=false", "PROJECTOR_LOG_FORMAT": "console"}
	s := config.FromEnv(func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if s.KurrentDBURI != "kurrentdb://h:2113?tls=false" || s.HTTPAddr != ":9090" || s.LogFormat != "console" || s.LogLevel != "info" {
		t.Errorf("settings = %+v", s)
	}
	if err := s.Validate(true, false); err != nil {
		t.Error(err)
	}
	err := s.Validate(true, true)
	if !config.IsValidation(err) || !strings.Contains(err.Error(), "DATABASE_URL: not set") {
		t.Errorf("err = %v", err)
	}
	s.LogFormat, s.LogLevel = "xml", "loud"
	if err := s.Validate(false, false); err == nil || !strings.Contains(err.Error(), `PROJECTOR_LOG_FORMAT: "xml"`) || !strings.Contains(err.Error(), `PROJECTOR_LOG_LEVEL: "loud"`) {
		t.Errorf("err = %v", err)
	}
}

func TestRootCertificates(t *testing.T) {
	pem := "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
	s := config.Settings{KurrentDBRootCertificates: pem}
	if b, err := s.RootCertificatesPEM(); err != nil || string(b) != strings.TrimSpace(pem) {
		t.Errorf("PEM text: %q %v", b, err)
	}
	f := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(f, []byte(pem), 0o600); err != nil {
		t.Fatal(err)
	}
	s.KurrentDBRootCertificates = f
	if b, err := s.RootCertificatesPEM(); err != nil || string(b) != pem {
		t.Errorf("PEM file: %q %v", b, err)
	}
	s.KurrentDBRootCertificates = f + ".missing"
	if _, err := s.RootCertificatesPEM(); err == nil || !strings.Contains(err.Error(), "KURRENTDB_ROOT_CERTIFICATES") {
		t.Errorf("missing file: %v", err)
	}
}

func TestDrainTimeout(t *testing.T) {
	s := config.FromEnv(func(string) (string, bool) { return "", false })
	if d, err := s.Drain(); err != nil || d != 30*time.Second {
		t.Errorf("default drain timeout = %v, %v; want 30s", d, err)
	}
	for v, want := range map[string]time.Duration{"45s": 45 * time.Second, "0s": 0, "1m30s": 90 * time.Second} {
		s.DrainTimeout = v
		if d, err := s.Drain(); err != nil || d != want {
			t.Errorf("drain timeout %q = %v, %v; want %v", v, d, err, want)
		}
		if err := s.Validate(false, false); err != nil {
			t.Errorf("validate with drain timeout %q: %v", v, err)
		}
	}
	for v, msg := range map[string]string{
		"30":  `PROJECTOR_DRAIN_TIMEOUT: "30" is not a duration`,
		"-1s": `PROJECTOR_DRAIN_TIMEOUT: "-1s" is negative`,
		"2h":  `PROJECTOR_DRAIN_TIMEOUT: "2h" is longer than the maximum 1h0m0s`,
	} {
		s.DrainTimeout = v
		err := s.Validate(false, false)
		if !config.IsValidation(err) || !strings.Contains(err.Error(), msg) {
			t.Errorf("drain timeout %q: err = %v, want %q", v, err, msg)
		}
	}
}

func TestSharedRead(t *testing.T) {
	s := config.FromEnv(func(string) (string, bool) { return "", false })
	if on, err := s.SharesReads(); err != nil || !on || s.SharedRead != config.DefaultSharedRead {
		t.Errorf("default shared read = %v, %v (%q); want on", on, err, s.SharedRead)
	}
	s = config.FromEnv(func(k string) (string, bool) { return "off", k == config.EnvSharedRead })
	if on, err := s.SharesReads(); err != nil || on {
		t.Errorf("PROJECTOR_SHARED_READ=off: %v, %v; want off", on, err)
	}
	for _, v := range []string{"yes", "OFF", "1"} {
		s.SharedRead = v
		err := s.Validate(false, false)
		if want := `PROJECTOR_SHARED_READ: "` + v + `" is neither on nor off`; !config.IsValidation(err) || !strings.Contains(err.Error(), want) {
			t.Errorf("shared read %q: err = %v, want %q", v, err, want)
		}
	}
}

func TestMaxWaits(t *testing.T) {
	s := config.FromEnv(func(string) (string, bool) { return "", false })
	if n, err := s.Waits(); err != nil || n != config.DefaultMaxWaits || config.DefaultMaxWaits != 10000 {
		t.Errorf("default max waits = %d, %v; want 10000", n, err)
	}
	s = config.FromEnv(func(k string) (string, bool) { return "250", k == config.EnvMaxWaits })
	if n, err := s.Waits(); err != nil || n != 250 {
		t.Errorf("PROJECTOR_MAX_WAITS=250: %d, %v", n, err)
	}
	for _, v := range []string{"0", "-5", "many", "1.5", "1000001"} {
		s.MaxWaits = v
		err := s.Validate(false, false)
		if want := `PROJECTOR_MAX_WAITS: "` + v + `" is not a number of waits`; !config.IsValidation(err) || !strings.Contains(err.Error(), want) {
			t.Errorf("max waits %q: err = %v, want %q", v, err, want)
		}
	}
}

func TestAdminToken(t *testing.T) {
	env := func(kv ...string) func(string) (string, bool) {
		m := map[string]string{}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
	}
	dir := t.TempDir()
	file := filepath.Join(dir, "token")
	if err := os.WriteFile(file, []byte("s3cret-from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, []byte(" \n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		env     []string
		want    string
		wantErr string
	}{
		{nil, "", ""},
		{[]string{config.EnvAdminToken, "s3cret"}, "s3cret", ""},
		{[]string{config.EnvAdminTokenFile, file}, "s3cret-from-file", ""},
		{[]string{config.EnvAdminToken, "a", config.EnvAdminTokenFile, file}, "", "PROJECTOR_ADMIN_TOKEN: set together with PROJECTOR_ADMIN_TOKEN_FILE"},
		{[]string{config.EnvAdminTokenFile, filepath.Join(dir, "none")}, "", "PROJECTOR_ADMIN_TOKEN_FILE: cannot read the admin token file"},
		{[]string{config.EnvAdminTokenFile, empty}, "", "PROJECTOR_ADMIN_TOKEN_FILE: the file " + empty + " is empty"},
		{[]string{config.EnvAdminToken, "two words"}, "", "PROJECTOR_ADMIN_TOKEN: the admin token holds a space or control character at byte 3"},
		{[]string{config.EnvAdminToken, strings.Repeat("x", 5000)}, "", "PROJECTOR_ADMIN_TOKEN: the admin token is 5000 bytes long"},
	} {
		got, err := config.FromEnv(env(tc.env...)).Admin()
		switch {
		case tc.wantErr == "" && (err != nil || got != tc.want):
			t.Errorf("%q: Admin() = %q, %v; want %q", tc.env, got, err, tc.want)
		case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr) || !config.IsValidation(err) || got != ""):
			t.Errorf("%q: Admin() = %q, %v; want an error with %q", tc.env, got, err, tc.wantErr)
		}
	}
}

// A "---" that starts no content (only comments after it) hides nothing: the file loads.
func TestEmptyTrailingDocumentIsAccepted(t *testing.T) {
	cfg, err := config.Parse("p.yaml", []byte("---\nprojections:\n  - name: a\n    handlers: {T: SELECT 1}\n---\n# the end\n"))
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Projections) != 1 || cfg.Projections[0].Name != "a" {
		t.Fatalf("projections = %+v, want the one named a", cfg.Projections)
	}
}

// SET n=@revision, with no space before the parameter, is the parameter (not an operator =@).
func TestParameterRightAfterAnOperatorLoads(t *testing.T) {
	cfg, err := config.Parse("p.yaml", []byte("projections:\n  - name: a\n    handlers:\n      T: UPDATE x SET n=@revision WHERE m>=@revision\n"))
	if err != nil {
		t.Fatal(err)
	}
	stmts, err := declarative.Parse(cfg.Projections[0].Handlers[0].SQL)
	if err != nil || len(stmts) != 1 || stmts[0].SQL != "UPDATE x SET n=($1::bigint) WHERE m>=($1::bigint)" {
		t.Fatalf("handler SQL parses to %+v, %v", stmts, err)
	}
}
