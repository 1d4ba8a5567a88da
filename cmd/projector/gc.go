// The daemon's garbage collector target: config.DefaultGOGC unless GOGC says otherwise.

package main

import (
	"runtime/debug"

	"github.com/projector-dev/projector/internal/config"
)

// tuneGC sets the garbage collector's target to config.DefaultGOGC when lookup finds no GOGC;
// a GOGC that is set (which the runtime has applied at start) stays in effect.
func tuneGC(lookup func(string) (string, bool)) {
	if _, set := lookup(config.EnvGOGC); !set {
		debug.SetGCPercent(config.DefaultGOGC)
	}
}
