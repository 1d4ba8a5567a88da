package config_test

import (
	"strings"
	"testing"

	"github.com/projector-dev/projector/internal/config"
)

// on_change defaults to rebuild and takes only its three policies; the definition carries the
// SQL texts and the version key, and its fingerprint follows them.
func TestOnChangeAndDefinition(t *testing.T) {
	const file = `projections:
  - name: a
    schema: CREATE TABLE IF NOT EXISTS a (n int)
    reset: TRUNCATE a
    handlers:
      T: INSERT INTO a VALUES (1)
      U: DELETE FROM a
`
	cfg, err := config.Parse("p.yaml", []byte(file))
	if err != nil {
		t.Fatal(err)
	}
	p := cfg.Projections[0]
	if p.OnChange != config.OnChangeRebuild {
		t.Errorf("default on_change = %q", p.OnChange)
	}
	d := p.Definition()
	if d.Name != "a" || d.Schema != p.Schema || d.Reset != "TRUNCATE a" || len(d.Handlers) != 2 || d.Handlers[1].Topic != "U" || d.Handlers[1].SQL != "DELETE FROM a" {
		t.Errorf("Definition = %+v", d)
	}
	versioned, err := config.Parse("p.yaml", []byte(strings.Replace(file, "    reset:", "    version: \"2\"\n    on_change: continue\n    reset:", 1)))
	if err != nil {
		t.Fatal(err)
	}
	v := versioned.Projections[0]
	if v.OnChange != config.OnChangeContinue || v.Definition().Version != "2" || v.Definition().Fingerprint() == d.Fingerprint() {
		t.Errorf("with version 2 and on_change continue: %+v", v.Definition())
	}
	_, err = config.Parse("p.yaml", []byte(strings.Replace(file, "    reset:", "    on_change: ignore\n    reset:", 1)))
	if err == nil || err.Error() != `p.yaml:4: projection "a": on_change: unknown policy "ignore"; use rebuild, fail or continue` {
		t.Errorf("bad on_change: %v", err)
	}
	if p.OnDependency != config.OnDependencyRefuse {
		t.Errorf("default on_dependency = %q", p.OnDependency)
	}
	_, err = config.Parse("p.yaml", []byte(strings.Replace(file, "    reset:", "    on_dependency: drop\n    reset:", 1)))
	if err == nil || err.Error() != `p.yaml:4: projection "a": on_dependency: unknown policy "drop"; use refuse or proceed` {
		t.Errorf("bad on_dependency: %v", err)
	}
	if p.KeepArchives != config.DefaultKeepArchives {
		t.Errorf("default keep_archives = %d", p.KeepArchives)
	}
	none, err := config.Parse("p.yaml", []byte(strings.Replace(file, "    reset:", "    keep_archives: 0\n    reset:", 1)))
	if err != nil || none.Projections[0].KeepArchives != 0 {
		t.Errorf("keep_archives 0: %v", err)
	}
	_, err = config.Parse("p.yaml", []byte(strings.Replace(file, "    reset:", "    keep_archives: -1\n    reset:", 1)))
	if err == nil || !strings.Contains(err.Error(), `p.yaml:4: projection "a": keep_archives: must be a whole number ≥ 0, not "-1"`) {
		t.Errorf("bad keep_archives: %v", err)
	}
}
