package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/projector-dev/projector/internal/poll"
	"github.com/projector-dev/projector/internal/testbin"
)

// selfSigned writes a self-signed certificate for 127.0.0.1 and localhost and its key, and
// returns their paths.
func selfSigned(t *testing.T) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "projector test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true,
		KeyUsage:    x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile = writeFile(t, "node.crt", string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})))
	keyFile = writeFile(t, "node.key", string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})))
	return certFile, keyFile
}

// TestSecureKurrentDB connects to a TLS listener that authenticates, trusting its CA through
// KURRENTDB_ROOT_CERTIFICATES given as a file path.
func TestSecureKurrentDB(t *testing.T) {
	t.Parallel()
	dbURL, pool := newDatabase(t)
	certFile, keyFile := selfSigned(t)
	plain, secure := testbin.FreeAddr(t), testbin.FreeAddr(t)
	start(t, emulatorBin, testbin.Env(), "--listen", plain, "--tls-listen", secure, "--tls-cert", certFile, "--tls-key", keyFile, "--log-level", "warn")
	poll.Until(t, 20*time.Second, "the emulator listens", func() bool {
		c, err := net.DialTimeout("tcp", secure, time.Second)
		if err == nil {
			_ = c.Close()
		}
		return err == nil
	})
	last := appendDogs(t, kurrentClient(t, "kurrentdb://"+plain+"?tls=false"), 0, 5, 2)

	addr := testbin.FreeAddr(t)
	cfgFile := writeFile(t, "projections.yaml", bothProjections(t))
	d := start(t, projectorBin, testbin.Env("KURRENTDB_URI=kurrentdb://admin:changeit@"+secure+"?tls=true",
		"KURRENTDB_ROOT_CERTIFICATES="+certFile, "DATABASE_URL="+dbURL, "PROJECTOR_HTTP_ADDR="+addr, "PROJECTOR_CONFIG="+cfgFile), "run")
	healthy(t, d, addr)
	waitHTTP(t, addr, "dog_counts", last)
	waitHTTP(t, addr, "dogs", last)
	if got := viewDigest(t, pool); !strings.HasPrefix(got, "dogs=5,tricks=10 dogs=5 tricks=10") {
		t.Errorf("views = %s", got)
	}
	if code := d.Signal(syscall.SIGTERM, exitTimeout); code != 0 {
		t.Errorf("exit code %d", code)
	}

	// A missing CA file is a configuration error.
	code, _, errOut := runProjector(t, testbin.Env("KURRENTDB_URI=kurrentdb://admin:changeit@"+secure+"?tls=true",
		"KURRENTDB_ROOT_CERTIFICATES="+keyFile+".missing", "DATABASE_URL="+dbURL, "PROJECTOR_CONFIG="+cfgFile), "run")
	if code != 2 || !strings.Contains(errOut, "KURRENTDB_ROOT_CERTIFICATES: neither PEM text nor a readable file") {
		t.Errorf("missing CA file: %d %s", code, errOut)
	}
}
