// Package loopback picks loopback addresses for the commands that tests and benchmarks start.
//
// A port the kernel hands out for "127.0.0.1:0" comes from its ephemeral range, the range
// outgoing connections take their local ports from: once the probe listener is closed, any
// connection opened before the command listens (a PostgreSQL connection, say) may take the
// port, and the command fails with "address already in use". FreeAddr picks its ports outside
// that range, where only a listener can take them.
package loopback

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
)

// EphemeralRangeFile is where Linux keeps its ephemeral port range ("low<TAB>high").
const EphemeralRangeFile = "/proc/sys/net/ipv4/ip_local_port_range"

// Ports FreeAddr chooses from when outside the ephemeral range: from LowestPort up, never a
// privileged port or the well-known low ones services use.
const (
	LowestPort  = 10000
	HighestPort = 65535
)

// defaultEphemeralRange is the range assumed where EphemeralRangeFile cannot be read (Linux's
// default).
var defaultEphemeralRange = PortRange{Low: 32768, High: 60999}

// maxTries bounds the ports FreeAddr tries before it gives up.
const maxTries = 200

// PortRange is an inclusive range of ports.
type PortRange struct {
	Low, High int
}

// ParsePortRange parses the contents of EphemeralRangeFile.
func ParsePortRange(s string) (PortRange, error) {
	f := strings.Fields(s)
	if len(f) != 2 {
		return PortRange{}, fmt.Errorf("port range %q: want two numbers", s)
	}
	low, err := strconv.Atoi(f[0])
	if err != nil {
		return PortRange{}, fmt.Errorf("port range %q: low: %w", s, err)
	}
	high, err := strconv.Atoi(f[1])
	if err != nil {
		return PortRange{}, fmt.Errorf("port range %q: high: %w", s, err)
	}
	if low < 1 || high > HighestPort || low > high {
		return PortRange{}, fmt.Errorf("port range %q: want 1 <= low <= high <= %d", s, HighestPort)
	}
	return PortRange{Low: low, High: high}, nil
}

// EphemeralRange returns the kernel's ephemeral port range, or Linux's default where it cannot
// be read.
func EphemeralRange() PortRange {
	b, err := os.ReadFile(EphemeralRangeFile)
	if err != nil {
		return defaultEphemeralRange
	}
	r, err := ParsePortRange(string(b))
	if err != nil {
		return defaultEphemeralRange
	}
	return r
}

// Candidates returns the ports from LowestPort to HighestPort outside ephemeral, as ranges.
func Candidates(ephemeral PortRange) []PortRange {
	var out []PortRange
	if ephemeral.Low > LowestPort {
		out = append(out, PortRange{Low: LowestPort, High: min(ephemeral.Low-1, HighestPort)})
	}
	if ephemeral.High < HighestPort {
		out = append(out, PortRange{Low: max(ephemeral.High+1, LowestPort), High: HighestPort})
	}
	return out
}

// FreeAddr returns "127.0.0.1:port" with a port outside the ephemeral range that nothing
// listened on a moment ago, for a command to listen on. Where the whole range from LowestPort
// up is ephemeral it falls back to a port the kernel picks.
func FreeAddr() (string, error) {
	return freeAddrIn(Candidates(EphemeralRange()), maxTries)
}

// freeAddrIn probes up to tries random ports of ranges for one nothing listens on.
func freeAddrIn(ranges []PortRange, tries int) (string, error) {
	size := 0
	for _, r := range ranges {
		size += r.High - r.Low + 1
	}
	if size == 0 {
		return probe(0)
	}
	var lastErr error
	for range tries {
		n := rand.IntN(size)
		port := 0
		for _, r := range ranges {
			if w := r.High - r.Low + 1; n >= w {
				n -= w
				continue
			}
			port = r.Low + n
			break
		}
		addr, err := probe(port)
		if err == nil {
			return addr, nil
		}
		lastErr = err
	}
	return "", fmt.Errorf("free loopback address: %d ports tried: %w", tries, lastErr)
}

// probe listens on port of 127.0.0.1 and closes the listener again.
func probe(port int) (string, error) {
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		return "", fmt.Errorf("free loopback address: %w", err)
	}
	addr := l.Addr().String()
	if err := l.Close(); err != nil {
		return "", errors.Join(fmt.Errorf("free loopback address: close %s", addr), err)
	}
	return addr, nil
}
