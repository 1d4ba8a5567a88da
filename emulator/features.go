package emulator

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/kurrent-io/KurrentDB-Client-Go/protos/kurrentdb/protocols/v1/serverfeatures"
	"github.com/kurrent-io/KurrentDB-Client-Go/protos/kurrentdb/protocols/v1/shared"
)

// featuresServer answers ServerFeatures.GetSupportedMethods with the methods
// the emulator implements, lower-cased as KurrentDB reports them.
type featuresServer struct {
	serverfeatures.UnimplementedServerFeaturesServer
	version string
}

// supportedMethods lists every implemented method with its features.
var supportedMethods = []struct {
	service, method string
	features        []string
}{
	{"event_store.client.streams.streams", "read", []string{"position", "events"}},
	{"event_store.client.streams.streams", "append", nil},
	{"event_store.client.streams.streams", "delete", nil},
	{"event_store.client.streams.streams", "tombstone", nil},
	{"event_store.client.streams.streams", "batchappend", []string{"deadline_duration"}},
	{"kurrentdb.protocol.v2.streams.streamsservice", "appendsession", nil},
	{"event_store.client.persistent_subscriptions.persistentsubscriptions", "create", []string{"stream", "all"}},
	{"event_store.client.server_features.serverfeatures", "getsupportedmethods", nil},
	{"event_store.client.gossip.gossip", "read", nil},
}

// GetSupportedMethods implements ServerFeatures.
func (f *featuresServer) GetSupportedMethods(context.Context, *shared.Empty) (*serverfeatures.SupportedMethods, error) {
	resp := &serverfeatures.SupportedMethods{EventStoreServerVersion: f.version}
	for _, m := range supportedMethods {
		resp.Methods = append(resp.Methods, &serverfeatures.SupportedMethod{
			MethodName:  m.method,
			ServiceName: m.service,
			Features:    append([]string(nil), m.features...),
		})
	}
	return resp, nil
}

// parseVersion checks a Major.Minor.Patch version as the clients parse it
// and returns its parts.
func parseVersion(v string) ([3]int, error) {
	var out [3]int
	parts := strings.Split(v, ".")
	if len(parts) != 3 {
		return out, fmt.Errorf("version %q is not Major.Minor.Patch", v)
	}
	for i, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 {
			return out, fmt.Errorf("version %q: part %d (%q) is not a non-negative integer", v, i+1, p)
		}
		out[i] = n
	}
	return out, nil
}
