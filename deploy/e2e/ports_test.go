package e2e

import (
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
)

// freeAddr returns a loopback address with a port nothing listens on, for a binary the test
// starts to listen on. The port is below the kernel's ephemeral range, the one outgoing
// connections take their local ports from: a port from there, free a moment ago, may be taken
// by any connection opened before the binary listens (a PostgreSQL connection once did, and
// the daemon failed with "address already in use"). The main module's internal/loopback does
// the same for its tests; this module does not depend on it.
func freeAddr(t *testing.T) string {
	t.Helper()
	const lowest = 10000
	below := 32768 // Linux's default start of the range
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if n, err := strconv.Atoi(f[0]); err == nil {
				below = n
			}
		}
	}
	var lastErr error
	for range 200 {
		port := 0 // the kernel's pick, where the ephemeral range starts too low to avoid
		if below > lowest+1000 {
			port = lowest + rand.IntN(below-lowest)
		}
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err != nil {
			lastErr = err
			continue
		}
		addr := l.Addr().String()
		_ = l.Close()
		return addr
	}
	t.Fatalf("free loopback address: %v", lastErr)
	return ""
}
