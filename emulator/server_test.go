package emulator

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/kurrent-io/KurrentDB-Client-Go/kurrentdb"
	"github.com/kurrent-io/KurrentDB-Client-Go/protos/kurrentdb/protocols/v1/gossip"
	"github.com/kurrent-io/KurrentDB-Client-Go/protos/kurrentdb/protocols/v1/serverfeatures"
	"github.com/kurrent-io/KurrentDB-Client-Go/protos/kurrentdb/protocols/v1/shared"
)

// startTest starts an emulator with a TLS listener for a test and closes it
// at the end.
func startTest(t testing.TB, opts Options) *Server {
	t.Helper()
	if opts.TLSListen == "" {
		opts.TLSListen = "127.0.0.1:0"
	}
	srv, err := Start(context.Background(), opts)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		if err := srv.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return srv
}

// newTestClient connects the official client to uri and closes it at the end.
func newTestClient(t testing.TB, uri string) *kurrentdb.Client {
	t.Helper()
	conf, err := kurrentdb.ParseConnectionString(uri)
	if err != nil {
		t.Fatalf("parse %q: %v", uri, err)
	}
	c, err := kurrentdb.NewClient(conf)
	if err != nil {
		t.Fatalf("NewClient: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func TestServerFeaturesAndGossip(t *testing.T) {
	srv := startTest(t, Options{})
	for _, uri := range []string{srv.URI(), srv.TLSURI()} {
		t.Run(uri, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			c := newTestClient(t, uri)
			members, err := c.Gossip(ctx)
			if err != nil {
				t.Fatalf("Gossip: %v", err)
			}
			if len(members) != 1 || members[0].State != gossip.MemberInfo_Leader || !members[0].IsAlive {
				t.Fatalf("Gossip members = %v, want one live leader", members)
			}
			v, err := c.GetServerVersion()
			if err != nil {
				t.Fatalf("GetServerVersion: %v", err)
			}
			if v.Major != 25 || v.Minor != 1 || v.Patch != 0 {
				t.Fatalf("version = %+v, want 25.1.0", v)
			}
		})
	}
}

func TestSupportedMethods(t *testing.T) {
	srv := startTest(t, Options{Version: "24.10.3"})
	resp, err := serverfeatures.NewServerFeaturesClient(rawConn(t, srv)).GetSupportedMethods(testCtx(t), &shared.Empty{})
	if err != nil {
		t.Fatal(err)
	}
	if resp.EventStoreServerVersion != "24.10.3" {
		t.Errorf("version = %q, want the configured 24.10.3", resp.EventStoreServerVersion)
	}
	got := map[string][]string{}
	for _, m := range resp.Methods {
		if m.MethodName != strings.ToLower(m.MethodName) || m.ServiceName != strings.ToLower(m.ServiceName) {
			t.Errorf("method %s/%s is not lower-cased", m.ServiceName, m.MethodName)
		}
		got[m.ServiceName+"/"+m.MethodName] = m.Features
	}
	for _, want := range []string{
		"event_store.client.streams.streams/read",
		"event_store.client.streams.streams/append",
		"event_store.client.streams.streams/batchappend",
		"event_store.client.streams.streams/delete",
		"event_store.client.streams.streams/tombstone",
		"kurrentdb.protocol.v2.streams.streamsservice/appendsession",
		"event_store.client.persistent_subscriptions.persistentsubscriptions/create",
		"event_store.client.server_features.serverfeatures/getsupportedmethods",
		"event_store.client.gossip.gossip/read",
	} {
		if _, ok := got[want]; !ok {
			t.Errorf("%s is not advertised", want)
		}
	}
	// Only what is implemented: advertising these would make the client
	// call them instead of falling back.
	for _, absent := range []string{
		"kurrentdb.protocol.v2.streams.streamsservice/appendrecords",
		"event_store.client.persistent_subscriptions.persistentsubscriptions/list",
		"event_store.client.persistent_subscriptions.persistentsubscriptions/getinfo",
	} {
		if _, ok := got[absent]; ok {
			t.Errorf("%s is advertised but not implemented", absent)
		}
	}
	if f := got["event_store.client.persistent_subscriptions.persistentsubscriptions/create"]; strings.Join(f, ",") != "stream,all" {
		t.Errorf("create features = %v, want [stream all]", f)
	}
}

func TestGossipAdvertisesListener(t *testing.T) {
	srv := startTest(t, Options{AdvertiseHost: "localhost"})
	for _, addr := range []string{srv.Addr(), srv.TLSAddr()} {
		var cc = rawConn(t, srv)
		if addr == srv.TLSAddr() {
			cc = rawTLSConn(t, srv)
		}
		info, err := gossip.NewGossipClient(cc).Read(testCtx(t), &shared.Empty{})
		if err != nil {
			t.Fatal(err)
		}
		_, port, _ := net.SplitHostPort(addr)
		m := info.GetMembers()
		if len(m) != 1 || m[0].GetHttpEndPoint().GetAddress() != "localhost" || strconv.Itoa(int(m[0].GetHttpEndPoint().GetPort())) != port ||
			m[0].GetInstanceId().GetStructured() == nil || m[0].GetTimeStamp() == 0 {
			t.Errorf("gossip on %s = %v, want one leader at localhost:%s", addr, info, port)
		}
	}
}

func TestStartValidatesOptions(t *testing.T) {
	for name, opts := range map[string]Options{
		"bad version":         {Version: "25.x.0"},
		"short version":       {Version: "25.1"},
		"cert without key":    {TLSListen: "127.0.0.1:0", TLSCertFile: "node.crt"},
		"missing cert files":  {TLSListen: "127.0.0.1:0", TLSCertFile: "/nonexistent.crt", TLSKeyFile: "/nonexistent.key"},
		"unusable listen":     {Listen: "256.0.0.1:0"},
		"unusable TLS listen": {TLSListen: "not-an-address"},
	} {
		t.Run(name, func(t *testing.T) {
			srv, err := Start(context.Background(), opts)
			if err == nil {
				_ = srv.Close()
				t.Fatalf("Start(%+v) succeeded, want an error", opts)
			}
		})
	}
}

func TestSeparateStores(t *testing.T) {
	dir := t.TempDir()
	srv := startTest(t, Options{SeparateStores: true, DataDir: dir})
	plain, secure := newTestClient(t, srv.URI()), newTestClient(t, srv.TLSURI())
	stream := "sep-" + uuid.NewString()
	if _, err := plain.AppendToStream(testCtx(t), stream, kurrentdb.AppendToStreamOptions{}, testEvents(1, "A")...); err != nil {
		t.Fatal(err)
	}
	if _, err := readAllOf(t, plain, stream); err != nil {
		t.Fatalf("read on the plaintext listener: %v", err)
	}
	if _, err := readAllOf(t, secure, stream); errorCode(err) != kurrentdb.ErrorCodeResourceNotFound {
		t.Fatalf("read on the TLS listener: err = %v, want not found (separate logs)", err)
	}
	for _, sub := range []string{"insecure", "secure"} {
		if fi, err := os.Stat(filepath.Join(dir, sub)); err != nil || !fi.IsDir() {
			t.Errorf("data subdirectory %s: %v", sub, err)
		}
	}
}

func TestTLSKeyPairFiles(t *testing.T) {
	cert, err := selfSignedCertificate(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "node.crt"), filepath.Join(dir, "node.key")
	keyDER, err := x509.MarshalPKCS8PrivateKey(cert.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Certificate[0]}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	srv := startTest(t, Options{TLSCertFile: certFile, TLSKeyFile: keyFile})
	_, port, _ := net.SplitHostPort(srv.TLSAddr())
	uri := "kurrentdb://admin:changeit@localhost:" + port + "?tls=true&tlscafile=" + certFile
	if _, err := newTestClient(t, uri).Gossip(testCtx(t)); err != nil {
		t.Fatalf("verified TLS connection with the given certificate: %v", err)
	}
}
