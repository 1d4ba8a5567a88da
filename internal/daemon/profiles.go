// The profiling listener: Go's runtime profiles (net/http/pprof) on an address of their own,
// off unless PROJECTOR_PPROF_ADDR names one.

package daemon

import (
	"net/http"
	"net/http/pprof"
	"time"
)

// ProfileWriteTimeout bounds a profiling response: the longest CPU profile or execution trace
// (?seconds=) the listener serves, and its transfer.
const ProfileWriteTimeout = 5 * time.Minute

// profileConnections is how many connections the profiling listener accepts at once.
const profileConnections = 8

// ListenProfiles serves Go's runtime profiles on addr, under /debug/pprof/: the index, every
// runtime profile by name (heap, goroutine, allocs, block, mutex, threadcreate), the CPU
// profile (profile?seconds=N), the execution trace (trace?seconds=N) and symbol lookups, as
// go tool pprof reads them. The command line (/debug/pprof/cmdline) is not served: it may hold
// a secret given as a flag.
func ListenProfiles(addr string) (*Server, error) {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/debug/pprof/cmdline" {
			http.NotFound(w, r)
			return
		}
		pprof.Index(w, r)
	})
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return Listen(addr, mux, ServerOptions{WriteTimeout: ProfileWriteTimeout, MaxConnections: profileConnections}, 0)
}
