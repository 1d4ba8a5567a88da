package httpapi_test

import (
	"strings"
	"testing"

	"github.com/projector-dev/projector/internal/httpapi"
)

// /v1/projections names the replica that leads each projection when the daemon knows it, and
// leaves the field out otherwise.
func TestProjectionsNameTheLeadingMember(t *testing.T) {
	f, _, srv, _ := setup(t)
	f.mu.Lock()
	f.statuses[0].LeaderMember = "replica-a"
	f.mu.Unlock()
	var list httpapi.ListJSON
	code, body := get(t, srv.URL+"/v1/projections", &list)
	if code != 200 || list.Projections[0].LeaderMember != "replica-a" || list.Projections[1].LeaderMember != "" {
		t.Fatalf("/v1/projections = %d %+v", code, list.Projections)
	}
	if strings.Count(body, `"leader_member"`) != 1 || !strings.Contains(body, `"leader_member": "replica-a"`) {
		t.Errorf("body %s: want leader_member once, for dogs", body)
	}
}
