// subscribeToStream and subscribeToAll against the emulator: catch-up then
// live, caughtUp with its checkpoint, server-side filters (event-type prefix
// and regex, excludeSystemEvents) with checkpoints.
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  END, START, NO_STREAM,
  binaryEvent, jsonEvent, eventTypeFilter, streamNameFilter, excludeSystemEvents,
} from "@kurrent/kurrentdb-client";
import { plainClient, uniqueStream, uniqueWord, collect, recorder, until } from "./helpers.mjs";

const client = plainClient();
const events = (n, type, from = 0) =>
  Array.from({ length: n }, (_, i) => jsonEvent({ type, data: { i: from + i } }));
const numbers = (rec) => rec.events.map((e) => e.event.data.i);

test("subscribeToStream from the start catches up, reports caughtUp, then goes live", async (t) => {
  const stream = uniqueStream("sub-stream");
  await client.appendToStream(stream, events(5, "Counted"), { streamState: NO_STREAM });
  const sub = client.subscribeToStream(stream, { fromRevision: START });
  t.after(() => sub.unsubscribe());
  const rec = recorder(sub);

  await until(() => rec.caughtUp.length > 0 || rec.error, () => `caughtUp (got ${rec.events.length} events)`);
  assert.equal(rec.error, null);
  assert.ok(rec.confirmed, "confirmation received");
  assert.equal(rec.caughtUp.length, 1);
  const { info } = rec.caughtUp[0];
  assert.ok(info.date instanceof Date && Math.abs(info.date - Date.now()) < 60_000, `caughtUp date ${info.date}`);
  assert.equal(info.revision, 4n);
  assert.equal(info.position, undefined);
  await until(() => rec.events.length >= 5, () => `5 catch-up events (got ${rec.events.length})`);

  const before = Date.now();
  const res = await client.appendToStream(stream, events(3, "Counted", 5), { streamState: 4n });
  assert.equal(res.nextExpectedRevision, 7n);
  await until(() => rec.events.length >= 8, () => `8 events (got ${rec.events.length})`);
  assert.deepEqual(numbers(rec), [0, 1, 2, 3, 4, 5, 6, 7]);
  assert.deepEqual(rec.events.map((e) => e.event.revision), [0n, 1n, 2n, 3n, 4n, 5n, 6n, 7n]);
  const live = rec.events[7].event;
  assert.equal(live.streamId, stream);
  assert.equal(live.type, "Counted");
  assert.ok(Math.abs(live.created.getTime() - before) < 5_000, `created ${live.created.toISOString()}`);
  assert.equal(rec.error, null);
});

test("subscribeToStream from a revision is exclusive; from END sees only new events", async (t) => {
  const stream = uniqueStream("sub-from");
  await client.appendToStream(stream, events(5, "Counted"), { streamState: NO_STREAM });
  const fromRev = client.subscribeToStream(stream, { fromRevision: 2n });
  const fromEnd = client.subscribeToStream(stream, { fromRevision: END });
  t.after(() => Promise.all([fromRev.unsubscribe(), fromEnd.unsubscribe()]));
  const a = recorder(fromRev);
  const b = recorder(fromEnd);
  await until(() => a.caughtUp.length > 0 && b.caughtUp.length > 0, () => "both caught up");
  await client.appendToStream(stream, events(1, "Counted", 5));
  await until(() => a.events.length >= 3 && b.events.length >= 1, () => `events (${a.events.length}, ${b.events.length})`);
  assert.deepEqual(numbers(a), [3, 4, 5]);
  assert.deepEqual(numbers(b), [5]);
});

test("subscribeToStream to a missing stream waits for it", async (t) => {
  const stream = uniqueStream("sub-missing");
  const sub = client.subscribeToStream(stream);
  t.after(() => sub.unsubscribe());
  const rec = recorder(sub);
  await until(() => rec.caughtUp.length > 0, () => "caughtUp");
  assert.equal(rec.caughtUp[0].info.revision, undefined, "no revision for an empty stream");
  await client.appendToStream(stream, events(2, "Counted"), { streamState: NO_STREAM });
  await until(() => rec.events.length >= 2, () => "2 events");
  assert.deepEqual(numbers(rec), [0, 1]);
});

/** Subscribes to $all with filter options (checkpoints recorded). */
function subscribeAll(t, options, makeFilter) {
  const checkpoints = [];
  const filter = makeFilter && makeFilter({ checkpointReached: (_s, pos) => { checkpoints.push(pos); } });
  const sub = client.subscribeToAll({ fromPosition: START, ...options, ...(filter ? { filter } : {}) });
  t.after(() => sub.unsubscribe());
  const rec = recorder(sub);
  rec.checkpoints = checkpoints;
  return rec;
}

test("subscribeToAll with an event-type prefix filter: only matching events, checkpoints, caughtUp", async (t) => {
  const word = uniqueWord();
  const s1 = uniqueStream("sub-all-prefix");
  const s2 = uniqueStream("sub-all-prefix");
  await client.appendToStream(s1, events(3, `${word}Placed`), { streamState: NO_STREAM });
  await client.appendToStream(s2, events(2, "Unrelated"), { streamState: NO_STREAM });
  await client.appendToStream(s2, events(2, `${word}Shipped`, 3));
  // Enough other events to cross several checkpoint intervals.
  await client.appendToStream(uniqueStream("sub-all-noise"), events(300, "Noise"));

  const rec = subscribeAll(t, {}, (extra) => eventTypeFilter({ prefixes: [`${word}Placed`, `${word}Shipped`], checkpointInterval: 1, maxSearchWindow: 20, ...extra }));
  await until(() => rec.caughtUp.length > 0 || rec.error, () => `caughtUp (got ${rec.events.length} events)`);
  assert.equal(rec.error, null);
  await until(() => rec.events.length >= 5, () => `5 events (got ${rec.events.length})`);
  assert.deepEqual(numbers(rec), [0, 1, 2, 3, 4]);
  assert.ok(rec.events.every((e) => e.event.type.startsWith(word)), "only matching types");
  const { info } = rec.caughtUp[0];
  assert.ok(info.date instanceof Date, "caughtUp has a date");
  assert.ok(info.position && info.position.commit > 0n, `caughtUp position ${JSON.stringify(info.position, (_k, v) => typeof v === "bigint" ? String(v) : v)}`);
  assert.equal(info.revision, undefined);

  assert.ok(rec.checkpoints.length >= 2, `${rec.checkpoints.length} checkpoints`);
  for (let i = 1; i < rec.checkpoints.length; i++) {
    assert.ok(rec.checkpoints[i].commit >= rec.checkpoints[i - 1].commit, "checkpoints never go back");
  }
  for (const cp of rec.checkpoints) {
    assert.equal(cp.prepare, cp.commit);
  }

  // Live: a matching event arrives, a non-matching one does not.
  await client.appendToStream(s1, events(1, "Unrelated", 90));
  await client.appendToStream(s1, events(1, `${word}Placed`, 5));
  await until(() => rec.events.length >= 6, () => `6 events (got ${rec.events.length})`);
  assert.deepEqual(numbers(rec), [0, 1, 2, 3, 4, 5]);
  assert.ok(rec.events[5].event.position.commit > info.position.commit, "live event after the caughtUp position");
});

test("subscribeToAll with an event-type regex filter", async (t) => {
  const word = uniqueWord();
  const stream = uniqueStream("sub-all-regex");
  await client.appendToStream(stream, [
    ...events(2, `${word}-Created`), ...events(2, `${word}-Snapshot`, 2), ...events(2, `${word}-Deleted`, 4),
  ], { streamState: NO_STREAM });
  const rec = subscribeAll(t, {}, (extra) => eventTypeFilter({ regex: `^${word}-(Created|Deleted)$`, maxSearchWindow: 10, checkpointInterval: 2, ...extra }));
  await until(() => rec.caughtUp.length > 0 || rec.error, () => "caughtUp");
  assert.equal(rec.error, null);
  await until(() => rec.events.length >= 4, () => `4 events (got ${rec.events.length})`);
  assert.deepEqual(numbers(rec), [0, 1, 4, 5]);
  // Going live, the server sends a checkpoint at the caughtUp position.
  const caughtAt = rec.caughtUp[0].info.position;
  assert.ok(rec.checkpoints.some((cp) => cp.commit === caughtAt.commit), "a checkpoint at the caughtUp position");

  // Live, every 2 x 10 events committed bring a checkpoint, matching or not.
  const noise = uniqueStream("sub-all-regex-noise");
  await client.appendToStream(noise, events(45, "Noise"), { streamState: NO_STREAM });
  const noisePositions = new Set((await collect(client.readStream(noise))).map((r) => r.event.position.commit));
  await until(() => rec.checkpoints.some((cp) => noisePositions.has(cp.commit)), () => "a live checkpoint in the noise");
  const live = rec.checkpoints.filter((cp) => cp.commit > caughtAt.commit);
  assert.ok(live.length >= 2 && live.every((cp) => noisePositions.has(cp.commit)), `live checkpoints ${live.map((cp) => cp.commit)}`);
  await client.appendToStream(stream, events(1, `${word}-Created`, 6));
  await until(() => rec.events.length >= 5, () => "the live event");
  assert.deepEqual(numbers(rec), [0, 1, 4, 5, 6]);
});

test("subscribeToAll with a stream-name prefix filter", async (t) => {
  const word = uniqueWord();
  await client.appendToStream(`${word}-a`, events(2, "Counted"));
  await client.appendToStream(uniqueStream("other"), events(2, "Counted"));
  await client.appendToStream(`${word}-b`, events(1, "Counted", 2));
  const rec = subscribeAll(t, {}, (extra) => streamNameFilter({ prefixes: [word], ...extra }));
  await until(() => rec.events.length >= 3 || rec.error, () => `3 events (got ${rec.events.length})`);
  assert.equal(rec.error, null);
  assert.deepEqual(rec.events.map((e) => e.event.streamId), [`${word}-a`, `${word}-a`, `${word}-b`]);
});

test("subscribeToAll with excludeSystemEvents delivers no $-typed event", async (t) => {
  const word = uniqueWord();
  const stream = uniqueStream("sub-all-nosys");
  await client.setStreamMetadata(stream, { maxCount: 10 }); // a $metadata event in $all
  await client.appendToStream(stream, events(2, word));

  const all = subscribeAll(t, {});
  const user = subscribeAll(t, {}, (extra) => excludeSystemEvents(extra));
  await until(() => (all.caughtUp.length > 0 && user.caughtUp.length > 0) || all.error || user.error, () => "both caught up");
  assert.equal(all.error, null);
  assert.equal(user.error, null);
  await until(() => user.events.some((e) => e.event.type === word && e.event.data.i === 1), () => "the user events");
  assert.ok(all.events.some((e) => e.event.type === "$metadata"), "the unfiltered subscription sees $metadata");
  assert.ok(all.caughtUp[0].info.position?.commit > 0n, "an unfiltered $all caughtUp carries a position");
  assert.ok(user.events.length > 0);
  assert.deepEqual(user.events.filter((e) => e.event.type.startsWith("$")), []);
  const userIds = new Set(user.events.map((e) => e.event.id));
  const expected = all.events.filter((e) => !e.event.type.startsWith("$")).map((e) => e.event.id);
  assert.deepEqual(expected.filter((id) => !userIds.has(id)), [], "every user event arrives");
});

test("subscribeToAll from a position is exclusive and from END sees only new events", async (t) => {
  const stream = uniqueStream("sub-all-from");
  const first = await client.appendToStream(stream, events(3, "Counted"), { streamState: NO_STREAM });
  const fromPos = subscribeAll(t, { fromPosition: first.position });
  const fromEnd = subscribeAll(t, { fromPosition: END });
  await until(() => fromPos.caughtUp.length > 0 && fromEnd.caughtUp.length > 0, () => "both caught up");
  await client.appendToStream(stream, events(1, "Counted", 3));
  const mine = (rec) => rec.events.filter((e) => e.event.streamId === stream).map((e) => e.event.data.i);
  await until(() => mine(fromPos).length >= 1 && mine(fromEnd).length >= 1, () => "the new event");
  assert.deepEqual(mine(fromPos), [3]);
  assert.deepEqual(mine(fromEnd), [3]);
});

test("an unsubscribed subscription ends without an error", async () => {
  const stream = uniqueStream("sub-close");
  const sub = client.subscribeToStream(stream);
  const rec = recorder(sub);
  let closed = false;
  sub.on("close", () => { closed = true; });
  await until(() => rec.caughtUp.length > 0, () => "caughtUp");
  await sub.unsubscribe();
  await until(() => closed, () => "close");
  assert.equal(rec.error, null);
});

test("subscriptions resolve links with resolveLinkTos", async (t) => {
  const target = uniqueStream("sub-link-target");
  const links = uniqueStream("sub-links");
  await client.appendToStream(target, events(2, "Counted"), { streamState: NO_STREAM });
  await client.appendToStream(links, binaryEvent({ type: "$>", data: Buffer.from(`1@${target}`) }), { streamState: NO_STREAM });
  const sub = client.subscribeToStream(links, { resolveLinkTos: true });
  t.after(() => sub.unsubscribe());
  const rec = recorder(sub);
  await until(() => rec.caughtUp.length > 0 && rec.events.length >= 1, () => "the link");
  await client.appendToStream(links, binaryEvent({ type: "$>", data: Buffer.from(`0@${target}`) }));
  await until(() => rec.events.length >= 2, () => "the live link");
  assert.deepEqual(rec.events.map((e) => [e.event.streamId, e.event.data.i, e.link.streamId, e.link.revision]),
    [[target, 1, links, 0n], [target, 0, links, 1n]]);
});

test("subscribeToAll from a position past the end echoes it in caughtUp and then goes live", async (t) => {
  const stream = uniqueStream("sub-all-past");
  const res = await client.appendToStream(stream, events(1, "Counted"), { streamState: NO_STREAM });
  const past = { commit: res.position.commit + 5_000_000n, prepare: res.position.commit + 5_000_000n };
  const rec = subscribeAll(t, { fromPosition: past });
  await until(() => rec.caughtUp.length > 0 || rec.error, () => "caughtUp");
  assert.equal(rec.error, null);
  assert.deepEqual(rec.caughtUp[0].info.position, past);
  assert.deepEqual(rec.events, []);
});
