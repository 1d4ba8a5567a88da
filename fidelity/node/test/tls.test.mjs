// The TLS listener: certificate verification against the CA, the default
// users, wrong passwords, anonymous calls and per-call credentials.
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  BACKWARDS, END, NO_STREAM,
  jsonEvent, KurrentDBClient, AccessDeniedError,
} from "@kurrent/kurrentdb-client";
import { tlsAddr, tlsClient, uniqueStream, collect, iterationError, rejection, recorder, until } from "./helpers.mjs";

const events = (n, from = 0) => Array.from({ length: n }, (_, i) => jsonEvent({ type: "Counted", data: { i: from + i } }));
const numbers = (read) => read.map((r) => r.event.data.i);
const admin = { username: "admin", password: "changeit" };

test("admin over TLS: append, read, read $all, metadata and subscribe", async (t) => {
  const client = tlsClient("admin:changeit");
  const stream = uniqueStream("tls");
  const res = await client.appendToStream(stream, events(3), { streamState: NO_STREAM });
  assert.equal(res.nextExpectedRevision, 2n);
  assert.deepEqual(numbers(await collect(client.readStream(stream))), [0, 1, 2]);
  const tail = await collect(client.readAll({ direction: BACKWARDS, fromPosition: END, maxCount: 3 }));
  assert.deepEqual(numbers(tail), [2, 1, 0]);
  await client.setStreamMetadata(stream, { maxCount: 2 });
  assert.deepEqual((await client.getStreamMetadata(stream)).metadata, { maxCount: 2 });

  const sub = client.subscribeToStream(stream);
  t.after(() => sub.unsubscribe());
  const rec = recorder(sub);
  await until(() => rec.caughtUp.length > 0 || rec.error, () => "caughtUp");
  assert.equal(rec.error, null);
  await client.appendToStream(stream, events(1, 3));
  await until(() => rec.events.length >= 3, () => `3 events (got ${rec.events.length})`);
  assert.deepEqual(rec.events.map((e) => e.event.data.i), [1, 2, 3]); // $maxCount 2 hides 0
});

test("the TLS node has the default users' system streams", async () => {
  const client = tlsClient("admin:changeit");
  const users = await collect(client.readStream("$users"));
  assert.deepEqual(users.map((r) => r.event.type), ["$User", "$User"]);
});

test("a wrong password is refused on every kind of call", async (t) => {
  const client = tlsClient("admin:wrong");
  const append = await rejection(client.appendToStream(uniqueStream("tls-bad"), events(1)));
  // The client maps Unauthenticated to AccessDeniedError.
  assert.ok(append instanceof AccessDeniedError, `append: got ${append}`);
  assert.match(append.message, /Unauthenticated/i);

  const read = await iterationError(client.readStream("$users"));
  assert.ok(read instanceof AccessDeniedError, `read: got ${read}`);

  const sub = client.subscribeToStream(uniqueStream("tls-bad"));
  t.after(() => sub.unsubscribe());
  const rec = recorder(sub);
  await until(() => rec.error, () => "the subscription's error");
  assert.ok(rec.error instanceof AccessDeniedError, `subscribe: got ${rec.error}`);

  const unknown = tlsClient("nobody:changeit");
  const err = await rejection(unknown.deleteStream(uniqueStream("tls-bad")));
  assert.ok(err instanceof AccessDeniedError, `unknown user: got ${err}`);
});

test("anonymous stream access is denied; per-call credentials grant it", async () => {
  const client = tlsClient("");
  const stream = uniqueStream("tls-anon");
  const err = await rejection(client.appendToStream(stream, events(1)));
  assert.ok(err instanceof AccessDeniedError, `got ${err}`);
  assert.doesNotMatch(err.message, /Unauthenticated/i);

  await client.appendToStream(stream, events(2), { streamState: NO_STREAM, credentials: admin });
  assert.deepEqual(numbers(await collect(client.readStream(stream, { credentials: admin }))), [0, 1]);
  const bad = await rejection(client.appendToStream(stream, events(1), { credentials: { username: "admin", password: "nope" } }));
  assert.ok(bad instanceof AccessDeniedError, `got ${bad}`);
});

test("ops may use user streams but not $all", async () => {
  const client = tlsClient("ops:changeit");
  const stream = uniqueStream("tls-ops");
  await client.appendToStream(stream, events(2), { streamState: NO_STREAM });
  assert.deepEqual(numbers(await collect(client.readStream(stream))), [0, 1]);
  const err = await iterationError(client.readAll({ maxCount: 1 }));
  assert.ok(err instanceof AccessDeniedError, `got ${err}`);
});

test("the certificate must verify: without the CA the connection fails", async () => {
  const client = KurrentDBClient.connectionString(`kurrentdb://admin:changeit@${tlsAddr()}?tls=true&maxDiscoverAttempts=1&defaultDeadline=5000`);
  try {
    const err = await rejection(client.appendToStream(uniqueStream("tls-ca"), events(1)));
    assert.ok(!(err instanceof AccessDeniedError), `got ${err}`);
  } finally {
    await client.dispose();
  }
  const insecure = KurrentDBClient.connectionString(`kurrentdb://admin:changeit@${tlsAddr()}?tls=true&tlsVerifyCert=false`);
  try {
    const res = await insecure.appendToStream(uniqueStream("tls-noverify"), events(1));
    assert.equal(res.nextExpectedRevision, 0n);
  } finally {
    await insecure.dispose();
  }
});
