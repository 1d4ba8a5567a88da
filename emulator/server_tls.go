package emulator

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"net"
	"time"
)

// serverTLSConfig builds the TLS listener's configuration from the key pair
// files, the given certificate, or a freshly generated self-signed one.
func serverTLSConfig(opts Options) (*tls.Config, error) {
	var cert tls.Certificate
	switch {
	case opts.TLSCertFile != "" || opts.TLSKeyFile != "":
		if opts.TLSCertFile == "" || opts.TLSKeyFile == "" {
			return nil, errors.New("TLSCertFile and TLSKeyFile must be given together")
		}
		c, err := tls.LoadX509KeyPair(opts.TLSCertFile, opts.TLSKeyFile)
		if err != nil {
			return nil, fmt.Errorf("load key pair %s, %s: %w", opts.TLSCertFile, opts.TLSKeyFile, err)
		}
		cert = c
	case opts.TLSCertificate != nil:
		cert = *opts.TLSCertificate
	default:
		c, err := selfSignedCertificate(time.Now())
		if err != nil {
			return nil, fmt.Errorf("generate self-signed certificate: %w", err)
		}
		cert = c
	}
	return &tls.Config{
		Certificates: []tls.Certificate{cert},
		MinVersion:   tls.VersionTLS12,
	}, nil
}

// selfSignedCertificate makes a short-lived certificate for localhost and the
// loopback addresses.
func selfSignedCertificate(now time.Time) (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return tls.Certificate{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "kurrentdb-emulator"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(30 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		DNSNames:              []string{"localhost"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, err
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, nil
}
