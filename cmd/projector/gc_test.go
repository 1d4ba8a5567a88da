package main

import (
	"runtime/debug"
	"testing"

	"github.com/projector-dev/projector/internal/config"
)

// The daemon's collector target is config.DefaultGOGC unless GOGC is set, which then wins.
func TestTuneGCDefaultsUnlessGOGCIsSet(t *testing.T) {
	initial := debug.SetGCPercent(100)
	t.Cleanup(func() { debug.SetGCPercent(initial) })

	tuneGC(func(string) (string, bool) { return "", false })
	if got := debug.SetGCPercent(100); got != config.DefaultGOGC {
		t.Errorf("GOGC unset: the collector target is %d, want %d", got, config.DefaultGOGC)
	}

	debug.SetGCPercent(150) // as the runtime applies GOGC=150 at start
	tuneGC(func(k string) (string, bool) { return "150", k == config.EnvGOGC })
	if got := debug.SetGCPercent(100); got != 150 {
		t.Errorf("GOGC=150: the collector target is %d, want it left at 150", got)
	}
}
