// The v2 AppendSession behind multiStreamAppend, the features the emulator
// does not advertise, and the persistent-subscription Create it serves.
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  ANY, NO_STREAM, STREAM_EXISTS,
  binaryEvent, jsonEvent, persistentSubscriptionToStreamSettingsFromDefaults,
  PersistentSubscriptionExistsError, StreamNotFoundError, StreamTombstonedError, UnsupportedError, WrongExpectedVersionError,
} from "@kurrent/kurrentdb-client";
import { plainClient, uniqueStream, collect, iterationError, rejection } from "./helpers.mjs";

const client = plainClient();

test("multiStreamAppend writes to several streams at once", async () => {
  const orders = uniqueStream("multi-orders");
  const audit = uniqueStream("multi-audit");
  const res = await client.multiStreamAppend([
    { streamName: orders, expectedState: NO_STREAM, events: [
      jsonEvent({ type: "OrderPlaced", data: { id: 1 }, metadata: { source: "web" } }),
      jsonEvent({ type: "OrderPaid", data: { id: 1 } }),
    ] },
    { streamName: audit, expectedState: ANY, events: [binaryEvent({ type: "Audit", data: Buffer.from([7, 7]) })] },
  ]);
  assert.ok(res.position > 0n, `position ${res.position}`);
  assert.deepEqual(res.responses, [{ streamName: orders, revision: 1n }, { streamName: audit, revision: 0n }]);

  const read = await collect(client.readStream(orders));
  assert.deepEqual(read.map((r) => [r.event.type, r.event.data]), [["OrderPlaced", { id: 1 }], ["OrderPaid", { id: 1 }]]);
  assert.equal(read[0].event.isJson, true);
  assert.equal(read[0].event.metadata.source, "web", `metadata ${JSON.stringify(read[0].event.metadata)}`);
  const blob = await collect(client.readStream(audit));
  assert.equal(blob[0].event.position.commit, res.position, "the position is that of the last event written");
  assert.ok(read[1].event.position.commit < res.position);
  assert.equal(blob[0].event.isJson, false);
  assert.deepEqual(Buffer.from(blob[0].event.data), Buffer.from([7, 7]));
});

test("multiStreamAppend is atomic: a revision conflict writes nothing", async () => {
  const a = uniqueStream("multi-a");
  const b = uniqueStream("multi-b");
  await client.appendToStream(a, [jsonEvent({ type: "E", data: {} }), jsonEvent({ type: "E", data: {} })]);
  const err = await rejection(client.multiStreamAppend([
    { streamName: b, expectedState: NO_STREAM, events: [jsonEvent({ type: "E", data: {} })] },
    { streamName: a, expectedState: 5n, events: [jsonEvent({ type: "E", data: {} })] },
  ]));
  assert.ok(err instanceof WrongExpectedVersionError, `got ${err}`);
  assert.equal(err.streamName, a);
  assert.equal(err.expectedState, 5n);
  assert.equal(err.actualState, 1n);
  const missing = await iterationError(client.readStream(b));
  assert.ok(missing instanceof StreamNotFoundError, `stream b: got ${missing}`);

  const exists = await rejection(client.multiStreamAppend([
    { streamName: uniqueStream("multi-missing"), expectedState: STREAM_EXISTS, events: [jsonEvent({ type: "E", data: {} })] },
  ]));
  assert.ok(exists instanceof WrongExpectedVersionError, `got ${exists}`);
});

test("multiStreamAppend to a tombstoned stream fails with StreamTombstonedError", async () => {
  const stream = uniqueStream("multi-tomb");
  await client.appendToStream(stream, jsonEvent({ type: "E", data: {} }));
  await client.tombstoneStream(stream);
  const err = await rejection(client.multiStreamAppend([
    { streamName: stream, expectedState: ANY, events: [jsonEvent({ type: "E", data: {} })] },
  ]));
  assert.ok(err instanceof StreamTombstonedError, `got ${err}`);
  assert.equal(err.stream, stream);
});

test("appendRecords is not advertised (KurrentDB 26.1), so the client refuses it locally", async () => {
  const err = await rejection(client.appendRecords([{ streamName: uniqueStream("records"), record: jsonEvent({ type: "E", data: {} }) }]));
  assert.ok(err instanceof UnsupportedError, `got ${err}`);
});

test("persistent subscription groups can be created once", async () => {
  const stream = uniqueStream("psub");
  const settings = persistentSubscriptionToStreamSettingsFromDefaults();
  await client.createPersistentSubscriptionToStream(stream, "group-a", settings);
  const err = await rejection(client.createPersistentSubscriptionToStream(stream, "group-a", settings));
  assert.ok(err instanceof PersistentSubscriptionExistsError, `got ${err}`);
  await client.createPersistentSubscriptionToStream(stream, "group-b", settings);
});
