package migrations

import (
	"strings"
	"testing"
	"testing/fstest"
)

func TestAllIsOrderedAndComplete(t *testing.T) {
	all, err := All()
	if err != nil {
		t.Fatal(err)
	}
	if len(all) < 2 || all[0].Version != 1 || !strings.Contains(all[0].SQL, "projector_tracking") {
		t.Fatalf("migrations = %+v, want 0001 creating projector_tracking first", all)
	}
	for i := 1; i < len(all); i++ {
		if all[i].Version <= all[i-1].Version {
			t.Errorf("migration %s is not after %s", all[i].Name, all[i-1].Name)
		}
	}
}

func TestParseRejectsBadNames(t *testing.T) {
	for name, want := range map[string]string{
		"tracking.sql":   `"tracking.sql": name must start with a positive number`,
		"0000_zero.sql":  `"0000_zero.sql"`,
		"x1_bad.sql":     `"x1_bad.sql"`,
		"0001_other.sql": `share version 1`,
	} {
		fsys := fstest.MapFS{"0001_a.sql": {Data: []byte("SELECT 1")}, name: {Data: []byte("SELECT 2")}}
		if _, err := parse(fsys); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("parse with %s: %v, want an error containing %s", name, err, want)
		}
	}
}
