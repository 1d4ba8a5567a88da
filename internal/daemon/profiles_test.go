package daemon_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/projector-dev/projector/internal/daemon"
)

// The profiling listener serves the runtime's profiles as go tool pprof reads them (a CPU
// profile is gzip-compressed protocol buffers), but not the command line, which may hold a
// secret.
func TestListenProfilesServesTheProfilesButNotTheCommandLine(t *testing.T) {
	s, err := daemon.ListenProfiles("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Error(err)
		}
	}()
	get := func(path string) (int, []byte) {
		t.Helper()
		resp, err := http.Get("http://" + s.Addr() + path)
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = resp.Body.Close() }()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, b
	}
	if code, b := get("/debug/pprof/"); code != http.StatusOK || !strings.Contains(string(b), "goroutine") {
		t.Errorf("index: %d %.200q", code, b)
	}
	if code, b := get("/debug/pprof/goroutine?debug=1"); code != http.StatusOK || !strings.HasPrefix(string(b), "goroutine profile: total") {
		t.Errorf("goroutines: %d %.200q", code, b)
	}
	if code, b := get("/debug/pprof/profile?seconds=1"); code != http.StatusOK || !bytes.HasPrefix(b, []byte{0x1f, 0x8b}) {
		t.Errorf("CPU profile: %d, %d bytes starting %x; want gzip", code, len(b), b[:min(len(b), 2)])
	}
	if code, _ := get("/debug/pprof/cmdline"); code != http.StatusNotFound {
		t.Errorf("command line: %d, want 404", code)
	}
	if code, _ := get("/metrics"); code != http.StatusNotFound {
		t.Errorf("/metrics on the profiling listener: %d, want 404", code)
	}
}
