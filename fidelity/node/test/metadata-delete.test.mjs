// Stream metadata set/get and its effect on reads; deleteStream and
// tombstoneStream with their errors.
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  ANY, BACKWARDS, END, NO_STREAM,
  jsonEvent, StreamDeletedError, StreamNotFoundError, WrongExpectedVersionError,
} from "@kurrent/kurrentdb-client";
import { plainClient, uniqueStream, collect, iterationError, rejection, recorder, until } from "./helpers.mjs";

const client = plainClient();
const events = (n, from = 0) => Array.from({ length: n }, (_, i) => jsonEvent({ type: "Counted", data: { i: from + i } }));
const numbers = (read) => read.map((r) => r.event.data.i);

test("stream metadata round-trips, custom keys included, and the latest wins", async () => {
  const stream = uniqueStream("meta");
  assert.deepEqual(await client.getStreamMetadata(stream), { streamName: stream });

  const first = await client.setStreamMetadata(stream, {
    maxAge: 3600, cacheControl: 60, acl: { readRoles: ["$admins", "ops"], writeRoles: "$admins" }, owner: "team-a", nested: { n: 1 },
  });
  assert.equal(first.nextExpectedRevision, 0n);
  const got = await client.getStreamMetadata(stream);
  assert.equal(got.streamName, stream);
  assert.deepEqual(got.metadata, {
    maxAge: 3600, cacheControl: 60, acl: { readRoles: ["$admins", "ops"], writeRoles: "$admins" }, owner: "team-a", nested: { n: 1 },
  });

  const second = await client.setStreamMetadata(stream, { maxCount: 3 }, { streamState: 0n });
  assert.equal(second.nextExpectedRevision, 1n);
  const latest = await client.getStreamMetadata(stream);
  assert.deepEqual(latest.metadata, { maxCount: 3 });
  assert.ok(latest.metastreamRevision > 0n);

  const err = await rejection(client.setStreamMetadata(stream, { maxCount: 1 }, { streamState: NO_STREAM }));
  assert.ok(err instanceof WrongExpectedVersionError, `got ${err}`);
  assert.equal(err.actualState, 1n);
});

test("$maxCount and $tb limit what reads return", async () => {
  const stream = uniqueStream("meta-effect");
  await client.appendToStream(stream, events(10), { streamState: NO_STREAM });
  await client.setStreamMetadata(stream, { maxCount: 3 });
  assert.deepEqual(numbers(await collect(client.readStream(stream))), [7, 8, 9]);
  assert.deepEqual(numbers(await collect(client.readStream(stream, { direction: BACKWARDS, fromRevision: END }))), [9, 8, 7]);
  await client.setStreamMetadata(stream, { truncateBefore: 5 });
  assert.deepEqual(numbers(await collect(client.readStream(stream))), [5, 6, 7, 8, 9]);
  // Appends continue from the real last revision.
  const res = await client.appendToStream(stream, events(1, 10), { streamState: 9n });
  assert.equal(res.nextExpectedRevision, 10n);
});

test("$maxAge hides expired events: the stream reads empty, not missing", async () => {
  const stream = uniqueStream("meta-maxage");
  await client.appendToStream(stream, events(2), { streamState: NO_STREAM });
  await client.setStreamMetadata(stream, { maxAge: 1 });
  await new Promise((resolve) => setTimeout(resolve, 2100));
  assert.deepEqual(await collect(client.readStream(stream)), []);
  await client.appendToStream(stream, events(1, 2), { streamState: 1n });
  assert.deepEqual(numbers(await collect(client.readStream(stream))), [2]);
});

test("deleteStream soft-deletes: reads say not found, a new append recreates the stream", async () => {
  const stream = uniqueStream("delete");
  await client.appendToStream(stream, events(3), { streamState: NO_STREAM });
  const res = await client.deleteStream(stream, { expectedRevision: 2n });
  assert.ok(res.position.commit > 0n, "delete position");

  const err = await iterationError(client.readStream(stream));
  assert.ok(err instanceof StreamNotFoundError, `got ${err}`);
  assert.equal((await collect(client.readAll())).filter((r) => r.event.streamId === stream).length, 3,
    "$all still holds the deleted events");

  const again = await client.appendToStream(stream, events(1, 3), { streamState: ANY });
  assert.equal(again.nextExpectedRevision, 3n);
  assert.deepEqual(numbers(await collect(client.readStream(stream))), [3]);
});

test("deleteStream checks the expected revision", async () => {
  const stream = uniqueStream("delete-wev");
  await client.appendToStream(stream, events(2), { streamState: NO_STREAM });
  const err = await rejection(client.deleteStream(stream, { expectedRevision: 0n }));
  assert.ok(err instanceof WrongExpectedVersionError, `got ${err}`);
  assert.equal(err.streamName, stream);
  assert.equal(err.expectedState, 0n);
  assert.equal(err.actualState, 1n);

  // Delete and tombstone report the conflict in trailers, which the client
  // reads as numbers: -1n stands for "no stream".
  const missing = await rejection(client.deleteStream(uniqueStream("delete-missing"), { expectedRevision: 4n }));
  assert.ok(missing instanceof WrongExpectedVersionError, `got ${missing}`);
  assert.equal(missing.expectedState, 4n);
  assert.equal(missing.actualState, -1n);
  await client.deleteStream(stream, { expectedRevision: 1n });
  // (The client cannot send STREAM_EXISTS for a delete: it has no case for it.)
});

test("tombstoneStream deletes for good: reads, appends, deletes and metadata fail", async () => {
  const stream = uniqueStream("tombstone");
  await client.appendToStream(stream, events(2), { streamState: NO_STREAM });
  const res = await client.tombstoneStream(stream, { expectedRevision: 1n });
  assert.ok(res.position.commit > 0n, "tombstone position");

  const read = await iterationError(client.readStream(stream));
  assert.ok(read instanceof StreamDeletedError, `read: got ${read}`);
  assert.equal(read.streamName, stream);
  const append = await rejection(client.appendToStream(stream, events(1)));
  assert.ok(append instanceof StreamDeletedError, `append: got ${append}`);
  assert.equal(append.streamName, stream);
  const del = await rejection(client.deleteStream(stream));
  assert.ok(del instanceof StreamDeletedError, `delete: got ${del}`);
  const tomb = await rejection(client.tombstoneStream(stream));
  assert.ok(tomb instanceof StreamDeletedError, `tombstone: got ${tomb}`);
  const meta = await rejection(client.setStreamMetadata(stream, { maxCount: 1 }));
  assert.ok(meta instanceof StreamDeletedError, `metadata: got ${meta}`);
});

test("tombstoneStream checks the expected revision, and works on a missing stream", async () => {
  const stream = uniqueStream("tombstone-wev");
  await client.appendToStream(stream, events(2), { streamState: NO_STREAM });
  const err = await rejection(client.tombstoneStream(stream, { expectedRevision: NO_STREAM }));
  assert.ok(err instanceof WrongExpectedVersionError, `got ${err}`);
  assert.equal(err.expectedState, -1n); // NO_STREAM, as the trailer carries it
  assert.equal(err.actualState, 1n);

  const missing = uniqueStream("tombstone-missing");
  await client.tombstoneStream(missing, { expectedRevision: NO_STREAM });
  const read = await iterationError(client.readStream(missing));
  assert.ok(read instanceof StreamDeletedError, `got ${read}`);
});

test("a stream subscription sees the tombstone and ends with StreamDeletedError", async (t) => {
  const stream = uniqueStream("tombstone-sub");
  await client.appendToStream(stream, events(1), { streamState: NO_STREAM });
  const sub = client.subscribeToStream(stream);
  t.after(() => sub.unsubscribe());
  const rec = recorder(sub);
  await until(() => rec.caughtUp.length > 0, () => "caughtUp");
  await client.tombstoneStream(stream);
  await until(() => rec.error, () => "the subscription's error");
  assert.ok(rec.error instanceof StreamDeletedError, `got ${rec.error}`);

  const late = client.subscribeToStream(stream);
  const lateRec = recorder(late);
  await until(() => lateRec.error, () => "an error for a subscription to a tombstoned stream");
  assert.ok(lateRec.error instanceof StreamDeletedError, `got ${lateRec.error}`);
});
