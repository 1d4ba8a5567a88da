package trainingschool_test

import (
	"context"
	"encoding/json"
	"regexp"
	"testing"

	"github.com/kurrent-io/KurrentDB-Client-Go/kurrentdb"
	"github.com/projector-dev/projector/examples/trainingschool"
)

func TestDogIDIsPythonsUUID5(t *testing.T) {
	// uuid.uuid5(uuid.NAMESPACE_URL, "/dogs/Fido") in Python.
	if got := trainingschool.DogID("Fido").String(); got != "1e1d7398-8986-57af-bb01-11a89b2f8b02" {
		t.Errorf("DogID(Fido) = %s", got)
	}
}

func TestEventsAreShapedAsThePythonPackageWritesThem(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	if _, err := e.school.Register(ctx, "Fido"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.school.AddTrick(ctx, "Fido", "roll over"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.school.AddTrick(ctx, "Rex", "sit"); err == nil {
		t.Error("a trick for an unregistered dog was recorded")
	}
	rs, err := e.client.ReadStream(ctx, trainingschool.DogID("Fido").String(), kurrentdb.ReadStreamOptions{From: kurrentdb.Start{}}, 10)
	if err != nil {
		t.Fatal(err)
	}
	defer rs.Close()
	iso := regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}\+00:00$`)
	wantTypes := []string{"__main__:Dog.Registered", "__main__:Dog.TrickAdded"}
	for rev, typ := range wantTypes {
		ev, err := rs.Recv()
		if err != nil {
			t.Fatal(err)
		}
		r := ev.Event
		if r.EventNumber != uint64(rev) || r.EventType != typ || r.ContentType != "application/octet-stream" || len(r.UserMetadata) != 0 {
			t.Errorf("event %d: revision %d, type %s, content type %s, metadata %q", rev, r.EventNumber, r.EventType, r.ContentType, r.UserMetadata)
		}
		var data map[string]any
		if err := json.Unmarshal(r.Data, &data); err != nil {
			t.Fatal(err)
		}
		compact, _ := json.Marshal(data)
		if string(compact) != string(r.Data) {
			t.Errorf("data is not compact JSON with sorted keys: %s", r.Data)
		}
		if _, ok := data["originator_id"]; ok {
			t.Errorf("data carries originator_id: %s", r.Data)
		}
		if _, ok := data["originator_version"]; ok {
			t.Errorf("data carries originator_version: %s", r.Data)
		}
		ts, _ := data["timestamp"].(map[string]any)
		if ts["_type_"] != "datetime_iso" || !iso.MatchString(ts["_data_"].(string)) {
			t.Errorf("timestamp = %v, want an eventsourcing datetime_iso", data["timestamp"])
		}
		switch rev {
		case 0:
			if data["name"] != "Fido" || data["originator_topic"] != "__main__:Dog" {
				t.Errorf("registered data = %s", r.Data)
			}
		case 1:
			if data["trick"] != "roll over" {
				t.Errorf("trick data = %s", r.Data)
			}
		}
	}
}
