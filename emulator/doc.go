// Package emulator is a KurrentDB-compatible gRPC server for development and
// tests. It serves the Streams (v1 and the v2 AppendSession), ServerFeatures,
// Gossip and a minimal PersistentSubscriptions service over the same wire
// protocol as KurrentDB, so the official clients work against it unmodified.
//
// Start runs a server on a free loopback port, like httptest.NewServer:
//
//	srv, err := emulator.Start(ctx, emulator.Options{})
//	...
//	defer srv.Close()
//	client, err := kurrentdb.NewClient(mustParse(srv.URI()))
//
// Options.TLSListen adds a TLS listener that authenticates KurrentDB's
// default users (TLSURI connects as admin). The fault hooks DropSubscriptions,
// Restart and SetLatency simulate outages in tests, and cmd/kurrentdb-emulator
// runs the same server as a binary.
//
// It guards itself against clients that misbehave, since it runs beside the
// services under test: server-side filters are matched outside the log's
// lock within a time budget per page (Options.FilterBudget), an append's
// size counts a fixed overhead per event and its event count is capped
// (Options.MaxAppendEvents), and so are concurrent subscriptions
// (Options.MaxSubscriptions).
//
// The emulator is a test and development tool. It keeps the whole log in
// memory (optionally persisted to a directory), runs a single node, and is
// never a production event store.
package emulator
