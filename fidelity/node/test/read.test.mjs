// readStream and readAll against the emulator: both directions, from the
// ends and from revisions or positions, counts, and missing streams. Reads go
// through the client's native bridge, a second gRPC implementation.
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  BACKWARDS, END, FORWARDS, START, NO_STREAM,
  binaryEvent, eventTypeFilter, jsonEvent, streamNameFilter, StreamNotFoundError,
} from "@kurrent/kurrentdb-client";
import { plainClient, uniqueStream, collect, iterationError } from "./helpers.mjs";

const client = plainClient();

async function fill(stream, n, type = "Counted") {
  const events = Array.from({ length: n }, (_, i) => jsonEvent({ type, data: { i } }));
  await client.appendToStream(stream, events, { streamState: NO_STREAM });
  return events;
}

const numbers = (read) => read.map((r) => r.event.data.i);
const revisions = (read) => read.map((r) => Number(r.event.revision));
const range = (from, to, step = 1) => {
  const out = [];
  for (let i = from; step > 0 ? i < to : i > to; i += step) out.push(i);
  return out;
};

test("readStream forwards from the start, from a revision, and with maxCount", async () => {
  const stream = uniqueStream("read-fwd");
  await fill(stream, 20);
  const all = await collect(client.readStream(stream, { direction: FORWARDS, fromRevision: START }));
  assert.deepEqual(numbers(all), range(0, 20));
  assert.deepEqual(revisions(all), range(0, 20));
  for (let i = 1; i < all.length; i++) {
    assert.ok(all[i].event.position.commit > all[i - 1].event.position.commit, "stream positions increase");
  }
  assert.deepEqual(numbers(await collect(client.readStream(stream, { fromRevision: 5n, maxCount: 3 }))), [5, 6, 7]);
  assert.deepEqual(numbers(await collect(client.readStream(stream, { fromRevision: 18n, maxCount: 10 }))), [18, 19]);
  assert.deepEqual(await collect(client.readStream(stream, { fromRevision: 20n })), []);
});

test("readStream backwards from the end and from a revision", async () => {
  const stream = uniqueStream("read-bwd");
  await fill(stream, 20);
  assert.deepEqual(numbers(await collect(client.readStream(stream, { direction: BACKWARDS, fromRevision: END }))), range(19, -1, -1));
  assert.deepEqual(numbers(await collect(client.readStream(stream, { direction: BACKWARDS, fromRevision: END, maxCount: 2 }))), [19, 18]);
  assert.deepEqual(numbers(await collect(client.readStream(stream, { direction: BACKWARDS, fromRevision: 4n }))), [4, 3, 2, 1, 0]);
  assert.deepEqual(numbers(await collect(client.readStream(stream, { direction: BACKWARDS, fromRevision: 100n, maxCount: 1 }))), [19]);
  // (BACKWARDS, START) and (FORWARDS, END) are not tested: the client's
  // native bridge turns them into a forwards read from the start and a
  // backwards read from the end.
});

test("a 1000-event stream reads in full both ways", async () => {
  const stream = uniqueStream("read-long");
  await fill(stream, 1000);
  assert.deepEqual(numbers(await collect(client.readStream(stream))), range(0, 1000));
  assert.deepEqual(numbers(await collect(client.readStream(stream, { direction: BACKWARDS, fromRevision: END }))), range(999, -1, -1));
});

test("reading a missing stream fails with StreamNotFoundError", async () => {
  const stream = uniqueStream("read-missing");
  for (const options of [{}, { direction: BACKWARDS, fromRevision: END }, { fromRevision: 3n }]) {
    const err = await iterationError(client.readStream(stream, options));
    assert.ok(err instanceof StreamNotFoundError, `got ${err}`);
    assert.equal(err.streamName, stream);
  }
});

test("readAll forwards from the start and from a position (inclusive)", async () => {
  const stream = uniqueStream("readall-fwd");
  const type = `ReadAll${Date.now()}`;
  await fill(stream, 10, type);
  const mine = (read) => read.filter((r) => r.event?.streamId === stream);

  const fromStart = await collect(client.readAll({ direction: FORWARDS, fromPosition: START }));
  assert.ok(fromStart.length >= 10, `read ${fromStart.length} events`);
  for (let i = 1; i < fromStart.length; i++) {
    assert.ok(fromStart[i].event.position.commit > fromStart[i - 1].event.position.commit, "$all positions increase");
  }
  const ours = mine(fromStart);
  assert.deepEqual(numbers(ours), range(0, 10));
  assert.ok(fromStart.some((r) => r.event.type.startsWith("$")), "$all holds system events");

  const at = ours[4].event.position;
  const fromPos = await collect(client.readAll({ direction: FORWARDS, fromPosition: at, maxCount: 3 }));
  assert.equal(fromPos.length, 3);
  assert.deepEqual(fromPos[0].event.position, at);
  assert.deepEqual(numbers(fromPos), [4, 5, 6]);

  const limited = await collect(client.readAll({ fromPosition: START, maxCount: 5 }));
  assert.deepEqual(limited.map((r) => r.event.id), fromStart.slice(0, 5).map((r) => r.event.id));
});

test("readAll backwards from the end and from a position (exclusive)", async () => {
  const stream = uniqueStream("readall-bwd");
  await fill(stream, 10);
  const fromEnd = await collect(client.readAll({ direction: BACKWARDS, fromPosition: END, maxCount: 10 }));
  // Nothing else appends while this file runs (the runner runs one file at a time).
  assert.deepEqual(fromEnd.map((r) => r.event.streamId), Array(10).fill(stream));
  assert.deepEqual(numbers(fromEnd), range(9, -1, -1));
  for (let i = 1; i < fromEnd.length; i++) {
    assert.ok(fromEnd[i].event.position.commit < fromEnd[i - 1].event.position.commit, "positions decrease");
  }
  const at = fromEnd[3].event.position; // event 6
  const before = await collect(client.readAll({ direction: BACKWARDS, fromPosition: at, maxCount: 2 }));
  assert.deepEqual(numbers(before), [5, 4]);

  const whole = await collect(client.readAll({ direction: BACKWARDS, fromPosition: END }));
  const forwards = await collect(client.readAll({ direction: FORWARDS, fromPosition: START }));
  assert.deepEqual(whole.map((r) => r.event.id).reverse(), forwards.map((r) => r.event.id));
});

test("readAll hides no user event and repeats none", async () => {
  const streams = [uniqueStream("readall-a"), uniqueStream("readall-b")];
  for (const s of streams) await fill(s, 5);
  const read = await collect(client.readAll());
  const ids = read.map((r) => r.event.id);
  assert.equal(new Set(ids).size, ids.length, "no event twice");
  for (const s of streams) {
    assert.deepEqual(numbers(read.filter((r) => r.event.streamId === s)), range(0, 5));
  }
});

test("links resolve to their events with resolveLinkTos", async () => {
  const target = uniqueStream("read-link-target");
  const links = uniqueStream("read-links");
  await fill(target, 3);
  await client.appendToStream(links, [
    binaryEvent({ type: "$>", data: Buffer.from(`2@${target}`) }),
    binaryEvent({ type: "$>", data: Buffer.from(`0@${target}`) }),
    binaryEvent({ type: "$>", data: Buffer.from(`9@${target}`) }), // no such event
  ], { streamState: NO_STREAM });

  const raw = await collect(client.readStream(links));
  assert.deepEqual(raw.map((r) => r.event.type), ["$>", "$>", "$>"]);
  assert.equal(raw[0].link, undefined);

  const resolved = await collect(client.readStream(links, { resolveLinkTos: true }));
  assert.equal(resolved.length, 3);
  assert.deepEqual(resolved.slice(0, 2).map((r) => [r.event.streamId, r.event.data.i, r.event.revision]), [[target, 2, 2n], [target, 0, 0n]]);
  assert.deepEqual(resolved.slice(0, 2).map((r) => [r.link.streamId, r.link.type, r.link.revision]), [[links, "$>", 0n], [links, "$>", 1n]]);
  assert.equal(resolved[2].event, undefined, "a link to a missing event has no event");
  assert.equal(resolved[2].link.revision, 2n);
});

test("readAll with a server-side filter returns only matching events", async () => {
  const word = `F${Date.now()}`;
  const stream = uniqueStream("readall-filter");
  await client.appendToStream(stream, [
    jsonEvent({ type: `${word}A`, data: { i: 0 } }), jsonEvent({ type: "Other", data: { i: 1 } }),
    jsonEvent({ type: `${word}B`, data: { i: 2 } }),
  ], { streamState: NO_STREAM });
  const byPrefix = await collect(client.readAll({ filter: eventTypeFilter({ prefixes: [word] }) }));
  assert.deepEqual(numbers(byPrefix), [0, 2]);
  const byRegex = await collect(client.readAll({ direction: BACKWARDS, fromPosition: END, filter: eventTypeFilter({ regex: `^${word}B$` }) }));
  assert.deepEqual(numbers(byRegex), [2]);
  const byStream = await collect(client.readAll({ filter: streamNameFilter({ prefixes: [stream] }) }));
  assert.deepEqual(numbers(byStream), [0, 1, 2]);
});

test("readAll from a position past the end", async () => {
  const stream = uniqueStream("readall-past");
  const res = await client.appendToStream(stream, [jsonEvent({ type: "E", data: { i: 0 } })], { streamState: NO_STREAM });
  const past = { commit: res.position.commit + 1_000_000n, prepare: res.position.commit + 1_000_000n };
  assert.deepEqual(await collect(client.readAll({ fromPosition: past })), []);
  const back = await collect(client.readAll({ direction: BACKWARDS, fromPosition: past, maxCount: 1 }));
  assert.deepEqual(back.map((r) => r.event.streamId), [stream]);
});
