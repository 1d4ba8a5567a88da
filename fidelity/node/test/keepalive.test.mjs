// An idle subscription survives the client's keepalive pings (every 10 s):
// a server with gRPC's default ping policy counts each as a strike and
// closes the connection (GOAWAY "too_many_pings") at the fourth ping, about
// 40 s in, which drops the subscription.
import { test } from "node:test";
import assert from "node:assert/strict";
import { jsonEvent } from "@kurrent/kurrentdb-client";
import { plainClient, uniqueStream, recorder, until } from "./helpers.mjs";

const idleSeconds = 45;

test(`a subscription idle for ${idleSeconds} s stays up and still goes live`, { timeout: (idleSeconds + 30) * 1000 }, async (t) => {
  const client = plainClient();
  const stream = uniqueStream("keepalive");
  const sub = client.subscribeToStream(stream);
  t.after(() => sub.unsubscribe());
  const rec = recorder(sub);
  let ended = false;
  sub.on("end", () => { ended = true; });
  await until(() => rec.caughtUp.length > 0 || rec.error, () => "caughtUp");
  await new Promise((resolve) => setTimeout(resolve, idleSeconds * 1000));
  assert.equal(rec.error, null);
  assert.equal(ended, false, "the subscription ended while idle");
  await client.appendToStream(stream, jsonEvent({ type: "Ping", data: {} }));
  await until(() => rec.events.length === 1 || rec.error, () => "the live event");
  assert.equal(rec.error, null);
  assert.equal(rec.events[0].event.type, "Ping");
});
