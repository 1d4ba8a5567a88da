// Package e2e holds end-to-end tests of Projector's deployment artefacts: they build and run
// the real projector and kurrentdb-emulator binaries against a real PostgreSQL, check that every
// metric the alert rules and the dashboard use is exported, and run Debian's Prometheus against
// the daemon to check, through Prometheus's query API, that lag and position are scraped and
// move as events are projected.
package e2e
