package loopback

import (
	"net"
	"strconv"
	"testing"
)

// listenAny holds a port the kernel picks, for the length of the test.
func listenAny(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	return l.Addr().(*net.TCPAddr).Port
}

func TestFreeAddrInSkipsAPortInUse(t *testing.T) {
	held := listenAny(t)
	free, err := freeAddrIn([]PortRange{{Low: held, High: held}}, 1)
	if err == nil {
		t.Fatalf("freeAddrIn gave %s, the only candidate being in use", free)
	}
	// With one held and one free candidate, every pick that succeeds is the free one.
	other, err := probe(0)
	if err != nil {
		t.Fatal(err)
	}
	_, p, _ := net.SplitHostPort(other)
	otherPort, _ := strconv.Atoi(p)
	for range 20 {
		got, err := freeAddrIn([]PortRange{{Low: held, High: held}, {Low: otherPort, High: otherPort}}, 64)
		if err != nil {
			t.Fatal(err)
		}
		if got != other {
			t.Fatalf("freeAddrIn = %s, want %s (port %d is in use)", got, other, held)
		}
	}
}
