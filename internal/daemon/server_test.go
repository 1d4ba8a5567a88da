package daemon_test

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/projector-dev/projector/internal/daemon"
)

// TestServerLimitsConnectionsAndHeaders: beyond MaxConnections a connection is not served
// until another closes, and headers past MaxHeaderBytes are refused with 431.
func TestServerLimitsConnectionsAndHeaders(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok") })
	srv, err := daemon.Listen("127.0.0.1:0", h, daemon.ServerOptions{MaxConnections: 2, MaxHeaderBytes: 1 << 10}, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown(t.Context())

	// ask sends one request on conn and returns the answer's status line, or the read's error.
	ask := func(conn net.Conn, extra string, within time.Duration) (string, error) {
		if _, err := io.WriteString(conn, "GET / HTTP/1.1\r\nHost: limits\r\n"+extra+"\r\n"); err != nil {
			return "", err
		}
		_ = conn.SetReadDeadline(time.Now().Add(within))
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			return "", err
		}
		_ = resp.Body.Close()
		return resp.Status, nil
	}
	big, err := net.Dial("tcp", srv.Addr())
	if err != nil {
		t.Fatal(err)
	}
	if status, err := ask(big, "X-Big: "+strings.Repeat("b", 8<<10)+"\r\n", 5*time.Second); err != nil || !strings.HasPrefix(status, "431") {
		t.Errorf("8 KiB header with a limit of 1 KiB = %q %v; want 431", status, err)
	}
	_ = big.Close()

	var open []net.Conn
	for range 3 {
		conn, err := net.Dial("tcp", srv.Addr())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		open = append(open, conn)
	}
	for _, conn := range open[:2] {
		if status, err := ask(conn, "", 5*time.Second); err != nil || status != "200 OK" {
			t.Fatalf("within the limit: %q %v", status, err)
		}
	}
	// The two connections stay open (kept alive): the third is not accepted.
	if status, err := ask(open[2], "", 300*time.Millisecond); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("third connection with a limit of 2 = %q %v; want no answer", status, err)
	}
	_ = open[0].Close()
	_ = open[2].SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(open[2]), nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("third connection once another closed = %v %v", resp, err)
	}
	_ = resp.Body.Close()

}
