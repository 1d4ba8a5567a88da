package emulator

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	"github.com/kurrent-io/KurrentDB-Client-Go/kurrentdb"
	"github.com/kurrent-io/KurrentDB-Client-Go/protos/kurrentdb/protocols/v1/shared"
)

// rawConn dials the plaintext listener with a bare gRPC connection, for
// requests the official client cannot produce.
func rawConn(t testing.TB, srv *Server) *grpc.ClientConn {
	t.Helper()
	cc, err := grpc.NewClient(srv.Addr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatalf("dial %s: %v", srv.Addr(), err)
	}
	t.Cleanup(func() { _ = cc.Close() })
	return cc
}

// rawTLSConn dials the TLS listener without verifying its certificate.
func rawTLSConn(t testing.TB, srv *Server) *grpc.ClientConn {
	t.Helper()
	creds := credentials.NewTLS(&tls.Config{InsecureSkipVerify: true}) //nolint:gosec // test against a self-signed certificate
	cc, err := grpc.NewClient(srv.TLSAddr(), grpc.WithTransportCredentials(creds))
	if err != nil {
		t.Fatalf("dial %s: %v", srv.TLSAddr(), err)
	}
	t.Cleanup(func() { _ = cc.Close() })
	return cc
}

// withBasicAuth adds an authorization header to ctx.
func withBasicAuth(ctx context.Context, user, password string) context.Context {
	return metadata.AppendToOutgoingContext(ctx, "authorization",
		"Basic "+base64.StdEncoding.EncodeToString([]byte(user+":"+password)))
}

// testCtx is a context that ends with the test or after 20 s.
func testCtx(t testing.TB) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// protoUUID encodes u in the structured form the Go client sends.
func protoUUID(u uuid.UUID) *shared.UUID {
	return gossipInstanceID(u)
}

// testEvents makes n small binary events of the given type.
func testEvents(n int, typ string) []kurrentdb.EventData {
	out := make([]kurrentdb.EventData, n)
	for i := range out {
		out[i] = kurrentdb.EventData{
			EventID:     uuid.New(),
			EventType:   typ,
			ContentType: kurrentdb.ContentTypeBinary,
			Data:        []byte{byte(i)},
		}
	}
	return out
}

// readAllOf reads a stream forwards with the official client.
func readAllOf(t testing.TB, c *kurrentdb.Client, stream string) ([]*kurrentdb.ResolvedEvent, error) {
	t.Helper()
	return readToEnd(c.ReadStream(testCtx(t), stream, kurrentdb.ReadStreamOptions{}, 1<<20))
}

// errorCode is the client's error code found in err's chain, or -1 when
// there is none.
func errorCode(err error) kurrentdb.ErrorCode {
	var e *kurrentdb.Error
	if !errors.As(err, &e) {
		return -1
	}
	return e.Code()
}
