package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/kurrent-io/KurrentDB-Client-Go/kurrentdb"

	"github.com/projector-dev/projector/internal/testbin"
)

// emulatorBin is the command under test, built once by TestMain.
var emulatorBin string

func TestMain(m *testing.M) {
	testbin.Main(m, testbin.Build{Package: ".", Path: &emulatorBin})
}

// process is a running emulator binary.
type process struct {
	cmd    *exec.Cmd
	uri    string
	tlsURI string
	logs   *bytes.Buffer // read it only after done has delivered
	done   chan error
	exited bool // done has delivered
}

// readyLine is the log entry the binary writes once it serves.
type readyLine struct {
	Msg    string `json:"msg"`
	URI    string `json:"uri"`
	TLSURI string `json:"tls_uri"`
}

// startBinary runs the binary and waits for its "ready" log line.
func startBinary(t *testing.T, bin string, args ...string) *process {
	t.Helper()
	cmd := exec.Command(bin, args...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &process{cmd: cmd, logs: &bytes.Buffer{}, done: make(chan error, 1)}
	ready := make(chan readyLine, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Bytes()
			p.logs.Write(append(line, '\n'))
			var entry readyLine
			if json.Unmarshal(line, &entry) == nil && entry.Msg == "ready" {
				ready <- entry
			}
		}
		p.done <- cmd.Wait()
	}()
	t.Cleanup(func() {
		if !p.exited {
			_ = cmd.Process.Kill()
			<-p.done
		}
	})
	select {
	case entry := <-ready:
		p.uri, p.tlsURI = entry.URI, entry.TLSURI
		return p
	case err := <-p.done:
		p.exited = true
		t.Fatalf("emulator exited before it was ready: %v\n%s", err, p.logs)
	case <-time.After(15 * time.Second):
		_ = cmd.Process.Kill()
		<-p.done
		p.exited = true
		t.Fatalf("emulator not ready after 15s:\n%s", p.logs)
	}
	return nil
}

// stop sends SIGTERM and checks for a clean exit.
func (p *process) stop(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-p.done:
		p.exited = true
		if err != nil {
			t.Fatalf("emulator exit after SIGTERM: %v\n%s", err, p.logs)
		}
	case <-time.After(15 * time.Second):
		t.Fatalf("emulator still running 15s after SIGTERM:\n%s", p.logs)
	}
}

func connect(t *testing.T, uri string) *kurrentdb.Client {
	t.Helper()
	conf, err := kurrentdb.ParseConnectionString(uri)
	if err != nil {
		t.Fatal(err)
	}
	c, err := kurrentdb.NewClient(conf)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func readStream(ctx context.Context, c *kurrentdb.Client, stream string) ([]*kurrentdb.ResolvedEvent, error) {
	rs, err := c.ReadStream(ctx, stream, kurrentdb.ReadStreamOptions{}, 1000)
	if err != nil {
		return nil, err
	}
	defer rs.Close()
	var out []*kurrentdb.ResolvedEvent
	for {
		ev, err := rs.Recv()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		out = append(out, ev)
	}
}

func TestBinaryPersistsAcrossRestarts(t *testing.T) {
	bin := emulatorBin
	data := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	p := startBinary(t, bin, "--listen", "127.0.0.1:0", "--data", data, "--log-level", "debug")
	c := connect(t, p.uri)
	stream := "persist-" + uuid.NewString()
	var written []uint64
	for i := 0; i < 3; i++ {
		ev := kurrentdb.EventData{EventID: uuid.New(), EventType: "Tick", ContentType: kurrentdb.ContentTypeJson,
			Data: []byte(`{"i":` + string(rune('0'+i)) + `}`), Metadata: []byte(`{"m":true}`)}
		res, err := c.AppendToStream(ctx, stream, kurrentdb.AppendToStreamOptions{}, ev)
		if err != nil {
			t.Fatalf("append %d: %v", i, err)
		}
		written = append(written, res.CommitPosition)
	}
	before, err := readStream(ctx, c, stream)
	if err != nil {
		t.Fatal(err)
	}
	_ = c.Close()
	p.stop(t)
	if !strings.Contains(p.logs.String(), `"method":"/event_store.client.streams.Streams/Append"`) {
		t.Errorf("--log-level debug logged no Append call:\n%s", p.logs)
	}

	p2 := startBinary(t, bin, "--listen", "127.0.0.1:0", "--data", data)
	c2 := connect(t, p2.uri)
	after, err := readStream(ctx, c2, stream)
	if err != nil {
		t.Fatalf("read after restart: %v\n%s", err, p2.logs)
	}
	if len(after) != len(before) || len(after) != 3 {
		t.Fatalf("read %d events after restart, %d before; want 3", len(after), len(before))
	}
	for i := range after {
		a, b := after[i].Event, before[i].Event
		if a.Position != b.Position || a.Position.Commit != written[i] || a.EventID != b.EventID ||
			!bytes.Equal(a.Data, b.Data) || !bytes.Equal(a.UserMetadata, b.UserMetadata) || !a.CreatedDate.Equal(b.CreatedDate) {
			t.Errorf("event %d after restart = %+v, before %+v", i, a, b)
		}
	}
	// Writing continues after the reloaded log.
	res, err := c2.AppendToStream(ctx, stream, kurrentdb.AppendToStreamOptions{StreamState: kurrentdb.Revision(2)}, kurrentdb.EventData{
		EventID: uuid.New(), EventType: "Tick", ContentType: kurrentdb.ContentTypeBinary, Data: []byte{1}})
	if err != nil || res.CommitPosition <= written[2] {
		t.Fatalf("append after restart = %+v, %v; want a position after %d", res, err, written[2])
	}
	p2.stop(t)
}

func TestBinaryTLSListener(t *testing.T) {
	bin := emulatorBin
	p := startBinary(t, bin, "--listen", "127.0.0.1:0", "--tls-listen", "127.0.0.1:0")
	tlsURI := p.tlsURI
	if tlsURI == "" {
		t.Fatal("no TLS URI in the ready line")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := connect(t, tlsURI).AppendToStream(ctx, "tls-"+uuid.NewString(), kurrentdb.AppendToStreamOptions{}, kurrentdb.EventData{
		EventID: uuid.New(), EventType: "A", ContentType: kurrentdb.ContentTypeBinary, Data: []byte{1}}); err != nil {
		t.Fatalf("append over TLS as admin: %v", err)
	}
	p.stop(t)
}

func TestRunFlags(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run([]string{"--version"}, &out, &errOut); code != 0 || !strings.Contains(out.String(), "KurrentDB protocol 25.1.0") {
		t.Errorf("--version: exit %d, output %q", code, out.String())
	}
	for _, args := range [][]string{
		{"--no-such-flag"},
		{"extra-argument"},
		{"--log-level", "loud"},
	} {
		out.Reset()
		errOut.Reset()
		if code := run(args, &out, &errOut); code != 2 || errOut.Len() == 0 {
			t.Errorf("run(%q) = %d with stderr %q, want 2 and a message", args, code, errOut.String())
		}
	}
	errOut.Reset()
	if code := run([]string{"--listen", "256.1.1.1:1"}, &out, &errOut); code != 1 || !strings.Contains(errOut.String(), "256.1.1.1") {
		t.Errorf("bad listen address: exit %d, stderr %q; want 1 naming the address", code, errOut.String())
	}
	if code := run([]string{"-h"}, &out, &errOut); code != 0 {
		t.Errorf("-h: exit %d, want 0", code)
	}
}
