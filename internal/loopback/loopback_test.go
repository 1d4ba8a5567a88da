package loopback_test

import (
	"net"
	"reflect"
	"strconv"
	"testing"

	"github.com/projector-dev/projector/internal/loopback"
)

func TestParsePortRange(t *testing.T) {
	r, err := loopback.ParsePortRange("32768\t60999\n")
	if err != nil || r != (loopback.PortRange{Low: 32768, High: 60999}) {
		t.Fatalf("ParsePortRange = %+v, %v", r, err)
	}
	for _, bad := range []string{"", "32768", "a 60999", "32768 b", "60999 32768", "0 100", "1 70000"} {
		if _, err := loopback.ParsePortRange(bad); err == nil {
			t.Errorf("ParsePortRange(%q): no error", bad)
		}
	}
}

func TestCandidatesLeaveOutTheEphemeralRange(t *testing.T) {
	for _, c := range []struct {
		ephemeral loopback.PortRange
		want      []loopback.PortRange
	}{
		{loopback.PortRange{Low: 32768, High: 60999}, []loopback.PortRange{{Low: 10000, High: 32767}, {Low: 61000, High: 65535}}},
		{loopback.PortRange{Low: 1024, High: 65535}, nil},
		{loopback.PortRange{Low: 49152, High: 65535}, []loopback.PortRange{{Low: 10000, High: 49151}}},
		{loopback.PortRange{Low: 1024, High: 20000}, []loopback.PortRange{{Low: 20001, High: 65535}}},
	} {
		if got := loopback.Candidates(c.ephemeral); !reflect.DeepEqual(got, c.want) {
			t.Errorf("Candidates(%+v) = %+v, want %+v", c.ephemeral, got, c.want)
		}
	}
}

func TestFreeAddrIsOutsideTheEphemeralRangeAndFree(t *testing.T) {
	eph := loopback.EphemeralRange()
	for range 50 {
		addr, err := loopback.FreeAddr()
		if err != nil {
			t.Fatal(err)
		}
		host, p, err := net.SplitHostPort(addr)
		if err != nil {
			t.Fatal(err)
		}
		port, _ := strconv.Atoi(p)
		if host != "127.0.0.1" {
			t.Fatalf("FreeAddr = %s, want a 127.0.0.1 address", addr)
		}
		if len(loopback.Candidates(eph)) > 0 && (port >= eph.Low && port <= eph.High || port < loopback.LowestPort) {
			t.Fatalf("FreeAddr = %s: port in the ephemeral range %+v or below %d", addr, eph, loopback.LowestPort)
		}
		l, err := net.Listen("tcp", addr)
		if err != nil {
			t.Fatalf("listen on FreeAddr's %s: %v", addr, err)
		}
		_ = l.Close()
	}
}
