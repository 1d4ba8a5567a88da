// Package projection defines what a projection is (a named handler of a set of event types
// that updates a view inside the view store's transaction), the events it sees, and the
// contracts of the two things a Runner joins: a Source of $all events and a view Store.
//
// The package imports neither pgx nor the KurrentDB client: view stores live in views/*, the
// KurrentDB source in source/kurrent.
//
// # Where things are
//
// The contracts:
//
//	projection.go   Event, Position, Projection, Store
//	source.go       Source, Subscription, Message, Prober
//	options.go      ProjectionOptions, Options, their defaults, Header, Leader, Flusher,
//	                DeadLetterer, Rewinder, errors
//	observer.go     Observer, RunState, Status, Failure
//	dispatch.go     Dispatch: a Projection routing events to one handler per type
//	batch.go        BatchProjection (one call per batch), Batch: one built from a function
//
// The Runner, in the order an event travels through it (source → pump → batcher → commit →
// tracking), one worker goroutine per projection:
//
//	runner.go       Runner: Add, Run (one worker per projection, or per partition), Status, Wait
//	remove.go       each projection's workers run as a unit with its own drain: Remove stops
//	                one while the Runner runs, Add starts one
//	partition.go    partitioned projections: the key, the partition of a key, the names
//	                (NAME#i), the projection's status and position from its partitions'
//	worker.go       a worker's state, the Status it publishes, fault reporting, outcomes
//	lease.go        the lease loop: standby, acquire, lead, back off, stopped until a command
//	session.go      one session: load tracking, subscribe, pump the subscription, dispatch
//	                each message to the batcher, commit a live batch once nothing more is ready
//	batcher.go      events and server checkpoints pending; when to commit them
//	probe.go        an idle live projection's probe past events it ignores
//	commit.go       commit a span: isolate a failing event (bisecting a batch projection's
//	                batch), apply the error policy to it
//	transaction.go  one store transaction: handlers or a dead letter, the tracking advance,
//	                then status, Observer and watermark (what Wait watches)
//	park.go         policy park: the Parker a store implements, which events of a
//	                transaction are parked (a failed one's stream, and its later events)
//	park_control.go ResumeStream and SkipStream of a parked stream, run between batches
//	control.go      Resume and Skip of a stopped projection
//	reset.go        Reset: rewind a view and its tracking to the start while paused
//
// Every wait between retries comes from internal/backoff.
package projection
