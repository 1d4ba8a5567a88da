// Shared set-up of the fidelity suite: clients for the emulator that
// scripts/fidelity-node.sh started, unique names, and small async helpers.
import { randomUUID } from "node:crypto";
import { after } from "node:test";
import { KurrentDBClient } from "@kurrent/kurrentdb-client";

function required(name) {
  const value = process.env[name];
  if (!value) {
    throw new Error(`${name} is not set: run this suite through scripts/fidelity-node.sh`);
  }
  return value;
}

/** host:port of the emulator's plaintext listener. */
export const plainAddr = () => required("KURRENTDB_PLAIN");
/** host:port of the emulator's TLS listener. */
export const tlsAddr = () => required("KURRENTDB_TLS");
/** CA certificate that signed the TLS listener's certificate. */
export const caFile = () => required("KURRENTDB_CA");

const clients = [];
after(async () => {
  await Promise.all(clients.map((c) => c.dispose()));
});

function track(client) {
  clients.push(client);
  return client;
}

/** A client of the plaintext listener, as an application connects to an insecure node. */
export function plainClient() {
  return track(KurrentDBClient.connectionString(`kurrentdb://${plainAddr()}?tls=false`));
}

/**
 * A client of the TLS listener that verifies the server certificate against
 * the CA; userInfo is "login:password", or "" for no credentials.
 */
export function tlsClient(userInfo = "admin:changeit") {
  const auth = userInfo ? `${userInfo}@` : "";
  return track(KurrentDBClient.connectionString(
    `kurrentdb://${auth}${tlsAddr()}?tls=true&tlsCAFile=${encodeURIComponent(caFile())}`,
  ));
}

/** A stream name no other test uses. */
export function uniqueStream(prefix = "node") {
  return `${prefix}-${randomUUID()}`;
}

/** A word (an event-type or stream-name prefix) no other test uses. */
export function uniqueWord() {
  return "T" + randomUUID().replaceAll("-", "").slice(0, 12);
}

/** Reads a whole async iterable into an array. */
export async function collect(iterable) {
  const out = [];
  for await (const item of iterable) {
    out.push(item);
  }
  return out;
}

/** Resolves with the rejection of promise, or fails when it resolves. */
export async function rejection(promise) {
  try {
    await promise;
  } catch (err) {
    return err;
  }
  throw new Error("expected the call to fail, but it succeeded");
}

/** Resolves with the error an async iterable throws, or fails when it ends normally. */
export async function iterationError(iterable) {
  return rejection(collect(iterable));
}

/**
 * Waits until predicate() is true, polling every 10 ms, or fails after ms
 * with what describe() says.
 */
export async function until(predicate, describe, ms = 10_000) {
  const deadline = Date.now() + ms;
  while (!predicate()) {
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${ms} ms waiting for ${describe()}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/**
 * Records what a subscription delivers: events, caughtUp infos, whether it
 * was confirmed, and the first error. checkpoints is for the caller to fill
 * from a filter's checkpointReached callback.
 */
export function recorder(subscription) {
  const rec = { events: [], caughtUp: [], checkpoints: [], error: null, confirmed: false };
  subscription.on("data", (e) => rec.events.push(e));
  subscription.on("caughtUp", (info) => rec.caughtUp.push({ info }));
  subscription.on("confirmation", () => { rec.confirmed = true; });
  subscription.on("error", (err) => { rec.error ??= err; });
  return rec;
}
