// appendToStream against the emulator: every expected-state variant, the
// wrong-expected-version errors, and the BatchAppend path the client takes
// when the server advertises it.
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  ANY, NO_STREAM, STREAM_EXISTS, FORWARDS, START,
  jsonEvent, binaryEvent, KurrentDBClient, StreamNotFoundError, UnknownError, WrongExpectedVersionError,
} from "@kurrent/kurrentdb-client";
import streamsGrpc from "@kurrent/kurrentdb-client/generated/kurrentdb/protocols/v1/streams_grpc_pb.js";
import { plainAddr, plainClient, tlsClient, uniqueStream, collect, iterationError, rejection } from "./helpers.mjs";

const client = plainClient();
const event = (n) => jsonEvent({ type: "Counted", data: { n } });

test("the server advertises BatchAppend, so appends use it", async () => {
  assert.equal(await client.supports(streamsGrpc.StreamsService.batchAppend), true);
  // scripts/fidelity-node.sh also checks the emulator served BatchAppend calls.
});

test("NO_STREAM creates a stream and then conflicts", async () => {
  const stream = uniqueStream("append-nostream");
  const res = await client.appendToStream(stream, [event(0), event(1)], { streamState: NO_STREAM });
  assert.equal(res.success, true);
  assert.equal(res.nextExpectedRevision, 1n);
  assert.ok(res.position.commit > 0n, `commit position ${res.position.commit}`);
  assert.equal(res.position.prepare, res.position.commit);

  const err = await rejection(client.appendToStream(stream, event(2), { streamState: NO_STREAM }));
  assert.ok(err instanceof WrongExpectedVersionError, `got ${err}`);
  assert.equal(err.streamName, stream);
  assert.equal(err.expectedState, NO_STREAM);
  assert.equal(err.actualState, 1n);
});

test("STREAM_EXISTS fails on a missing stream and succeeds on an existing one", async () => {
  const stream = uniqueStream("append-exists");
  const err = await rejection(client.appendToStream(stream, event(0), { streamState: STREAM_EXISTS }));
  assert.ok(err instanceof WrongExpectedVersionError, `got ${err}`);
  assert.equal(err.streamName, stream);
  assert.equal(err.expectedState, STREAM_EXISTS);
  assert.equal(err.actualState, NO_STREAM);

  await client.appendToStream(stream, event(0), { streamState: NO_STREAM });
  const res = await client.appendToStream(stream, event(1), { streamState: STREAM_EXISTS });
  assert.equal(res.nextExpectedRevision, 1n);
});

test("ANY appends whatever the stream's state", async () => {
  const stream = uniqueStream("append-any");
  let res = await client.appendToStream(stream, event(0), { streamState: ANY });
  assert.equal(res.nextExpectedRevision, 0n);
  res = await client.appendToStream(stream, [event(1), event(2)]); // ANY is the default
  assert.equal(res.nextExpectedRevision, 2n);
});

test("an exact revision succeeds when it matches and conflicts otherwise", async () => {
  const stream = uniqueStream("append-revision");
  const first = await client.appendToStream(stream, [event(0), event(1), event(2)]);
  const res = await client.appendToStream(stream, event(3), { streamState: 2n });
  assert.equal(res.nextExpectedRevision, 3n);
  assert.ok(res.position.commit > first.position.commit);

  for (const stale of [2n, 7n]) {
    const err = await rejection(client.appendToStream(stream, event(4), { streamState: stale }));
    assert.ok(err instanceof WrongExpectedVersionError, `got ${err}`);
    assert.equal(err.expectedState, stale);
    assert.equal(err.actualState, 3n);
  }
  const missing = uniqueStream("append-revision-missing");
  const err = await rejection(client.appendToStream(missing, event(0), { streamState: 0n }));
  assert.ok(err instanceof WrongExpectedVersionError, `got ${err}`);
  assert.equal(err.expectedState, 0n);
  assert.equal(err.actualState, NO_STREAM);
});

test("throwOnAppendFailure=false reports a conflict as success=false", async () => {
  const lenient = KurrentDBClient.connectionString(`kurrentdb://${plainAddr()}?tls=false&throwOnAppendFailure=false`);
  try {
    const stream = uniqueStream("append-nothrow");
    await lenient.appendToStream(stream, event(0));
    const res = await lenient.appendToStream(stream, event(1), { streamState: NO_STREAM });
    assert.equal(res.success, false);
    assert.equal(res.position, undefined);
    // The client (1.3.1) converts hasCurrentStreamRevision(), a boolean, so
    // nextExpectedRevision is 1n whenever the stream exists; a missing
    // stream gives -1n.
    assert.equal(res.nextExpectedRevision, 1n);
    const missing = await lenient.appendToStream(uniqueStream("append-nothrow-missing"), event(0), { streamState: 5n });
    assert.equal(missing.success, false);
    assert.equal(missing.nextExpectedRevision, -1n);
  } finally {
    await lenient.dispose();
  }
});

test("events round-trip: ids, types, JSON and binary data, metadata", async () => {
  const stream = uniqueStream("append-roundtrip");
  const events = [
    jsonEvent({ type: "OrderPlaced", data: { id: 1, name: "ünïcödé" }, metadata: { by: "test" } }),
    binaryEvent({ type: "Blob", data: Buffer.from([0, 1, 2, 255]), metadata: Buffer.from([9, 8]) }),
    jsonEvent({ type: "Empty", data: {} }),
  ];
  await client.appendToStream(stream, events, { streamState: NO_STREAM });
  const read = await collect(client.readStream(stream, { direction: FORWARDS, fromRevision: START }));
  assert.equal(read.length, 3);
  read.forEach((r, i) => {
    assert.equal(r.event.id, events[i].id);
    assert.equal(r.event.type, events[i].type);
    assert.equal(r.event.streamId, stream);
    assert.equal(r.event.revision, BigInt(i));
    assert.ok(r.event.created instanceof Date, "created is a Date");
    assert.ok(Math.abs(r.event.created.getTime() - Date.now()) < 60_000, `created ${r.event.created}`);
  });
  assert.equal(read[0].event.isJson, true);
  assert.deepEqual(read[0].event.data, { id: 1, name: "ünïcödé" });
  assert.deepEqual(read[0].event.metadata, { by: "test" });
  assert.equal(read[1].event.isJson, false);
  assert.deepEqual(Buffer.from(read[1].event.data), Buffer.from([0, 1, 2, 255]));
  assert.deepEqual(Buffer.from(read[1].event.metadata), Buffer.from([9, 8]));
  assert.deepEqual(read[2].event.data, {});
});

test("a batch larger than batchAppendSize is split and stays one append", async () => {
  const stream = uniqueStream("append-large");
  const big = "x".repeat(10_000);
  const events = Array.from({ length: 50 }, (_, n) => jsonEvent({ type: "Big", data: { n, big } }));
  const res = await client.appendToStream(stream, events, { streamState: NO_STREAM, batchAppendSize: 64 * 1024 });
  assert.equal(res.nextExpectedRevision, 49n);
  const read = await collect(client.readStream(stream));
  assert.deepEqual(read.map((r) => r.event.data.n), events.map((_, n) => n));
});

test("appends with per-call credentials take the Append RPC and behave the same", async () => {
  const secure = tlsClient();
  const stream = uniqueStream("append-unary");
  const credentials = { username: "admin", password: "changeit" };
  const res = await secure.appendToStream(stream, [event(0), event(1)], { streamState: NO_STREAM, credentials });
  assert.equal(res.nextExpectedRevision, 1n);
  assert.ok(res.position.commit > 0n);
  const err = await rejection(secure.appendToStream(stream, event(2), { streamState: 0n, credentials }));
  assert.ok(err instanceof WrongExpectedVersionError, `got ${err}`);
  assert.equal(err.expectedState, 0n);
  assert.equal(err.actualState, 1n);
  const exists = await secure.appendToStream(stream, event(2), { streamState: STREAM_EXISTS, credentials });
  assert.equal(exists.nextExpectedRevision, 2n);
});

test("concurrent appends share the BatchAppend stream and each gets its own result", async () => {
  const big = "y".repeat(20_000);
  const streams = Array.from({ length: 8 }, () => uniqueStream("append-concurrent"));
  // Several chunks per append (batchAppendSize 32 KiB), all in flight at once.
  const results = await Promise.all(streams.map((s, k) => client.appendToStream(s,
    Array.from({ length: 6 }, (_, n) => jsonEvent({ type: "Big", data: { k, n, big } })),
    { streamState: NO_STREAM, batchAppendSize: 32 * 1024 })));
  results.forEach((r) => assert.equal(r.nextExpectedRevision, 5n));
  const conflicts = await Promise.allSettled(streams.map((s) => client.appendToStream(s, event(9), { streamState: 4n })));
  conflicts.forEach((c) => {
    assert.equal(c.status, "rejected");
    assert.ok(c.reason instanceof WrongExpectedVersionError, `got ${c.reason}`);
    assert.equal(c.reason.actualState, 5n);
  });
  for (const [k, s] of streams.entries()) {
    const read = await collect(client.readStream(s));
    assert.deepEqual(read.map((r) => [r.event.data.k, r.event.data.n]), [0, 1, 2, 3, 4, 5].map((n) => [k, n]));
  }
});

test("appending the same events again is idempotent", async () => {
  const stream = uniqueStream("append-idempotent");
  const events = [event(0), event(1)];
  const first = await client.appendToStream(stream, events, { streamState: NO_STREAM });
  const again = await client.appendToStream(stream, events, { streamState: NO_STREAM });
  assert.equal(again.nextExpectedRevision, first.nextExpectedRevision);
  const read = await collect(client.readStream(stream));
  assert.deepEqual(read.map((r) => r.event.id), events.map((e) => e.id));
});

test("an event over the 16 MiB limit is refused and the BatchAppend stream stays usable", async () => {
  const stream = uniqueStream("append-huge");
  const huge = jsonEvent({ type: "Huge", data: { blob: "z".repeat(16 * 1024 * 1024 + 10) } });
  const err = await rejection(client.appendToStream(stream, huge));
  // The server reports MaximumAppendEventSizeExceeded, a detail the client
  // (1.3.1) does not decode, so it surfaces as an UnknownError naming it.
  assert.ok(err instanceof UnknownError, `got ${err}`);
  assert.match(err.message, /MaximumAppendEventSizeExceeded/);
  const missing = await iterationError(client.readStream(stream));
  assert.ok(missing instanceof StreamNotFoundError, `got ${missing}`);
  const ok = await client.appendToStream(stream, event(0), { streamState: NO_STREAM });
  assert.equal(ok.nextExpectedRevision, 0n);
});
