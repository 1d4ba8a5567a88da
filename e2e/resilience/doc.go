// Package resilience holds Projector's fault-injection suite: the real projector binary
// projects a workload of tens of thousands of events from a KurrentDB emulator into
// PostgreSQL while the suite breaks things (subscriptions dropped, the emulator restarted on
// its data, PostgreSQL backends killed, connections cut or black-holed through
// internal/faultproxy, the leader killed with a standby running, poison events under each
// error policy, SIGTERM in the middle of a batch) and then asserts that the view holds every
// event of the log exactly once.
//
// The package has only tests; run them with `go test ./e2e/resilience`. They need the
// PostgreSQL of the other tests (PROJECTOR_TEST_DATABASE_URL, by default the local server) and
// build the binaries themselves.
package resilience
