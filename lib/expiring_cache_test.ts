import assert from "node:assert/strict";
import { ExpiringCache } from "./expiring_cache.ts";

/** A cache on a hand-moved clock, and a compute function that counts its calls. */
function setup(maxEntries = 10) {
  let now = 1_000;
  const cache = new ExpiringCache<string, string>({ maxEntries, now: () => now });
  const calls: string[] = [];
  const compute = (key: string, value = `${key}-${calls.length}`) => () => {
    calls.push(key);
    return Promise.resolve(value);
  };
  return { cache, calls, compute, advance: (ms: number) => now += ms };
}

Deno.test("a value is reused until its time-to-live has passed", async () => {
  const { cache, calls, compute, advance } = setup();
  assert.equal(await cache.get("a", compute("a"), () => 100), "a-0");
  advance(99);
  assert.equal(await cache.get("a", compute("a"), () => 100), "a-0");
  advance(1);
  assert.equal(await cache.get("a", compute("a"), () => 100), "a-1");
  assert.deepEqual(calls, ["a", "a"]);
});

Deno.test("the time-to-live may depend on the value; 0 keeps nothing", async () => {
  const { cache, calls, compute, advance } = setup();
  const ttl = (value: string) => value === "allow" ? 60_000 : 0;
  await cache.get("yes", compute("yes", "allow"), ttl);
  await cache.get("no", compute("no", "deny"), ttl);
  assert.equal(cache.size, 1);
  advance(30_000);
  await cache.get("yes", compute("yes", "allow"), ttl);
  await cache.get("no", compute("no", "deny"), ttl);
  assert.deepEqual(calls, ["yes", "no", "no"]);
});

Deno.test("concurrent lookups of one key share one computation", async () => {
  const { cache } = setup();
  let calls = 0;
  const { promise, resolve } = Promise.withResolvers<string>();
  const compute = () => {
    calls++;
    return promise;
  };
  const lookups = [1, 2, 3].map(() => cache.get("k", compute, () => 1_000));
  resolve("v");
  assert.deepEqual(await Promise.all(lookups), ["v", "v", "v"]);
  assert.equal(calls, 1);
});

Deno.test("a failure reaches every waiting caller and is not kept", async () => {
  const { cache, calls, compute } = setup();
  const failing = () => Promise.reject(new Error("API server down"));
  const lookups = [cache.get("k", failing, () => 1_000), cache.get("k", failing, () => 1_000)];
  for (const lookup of lookups) await assert.rejects(lookup, /API server down/);
  assert.equal(cache.size, 0);
  assert.equal(await cache.get("k", compute("k"), () => 1_000), "k-0");
  assert.deepEqual(calls, ["k"]);
});

Deno.test("the cache holds at most maxEntries; the oldest entry goes first", async () => {
  const { cache, calls, compute } = setup(3);
  for (const key of ["a", "b", "c", "d"]) await cache.get(key, compute(key), () => 60_000);
  assert.equal(cache.size, 3);
  await cache.get("b", compute("b"), () => 60_000);
  await cache.get("a", compute("a"), () => 60_000);
  assert.deepEqual(calls, ["a", "b", "c", "d", "a"]);
  assert.equal(cache.size, 3);
});

Deno.test("maxEntries must be a positive integer", () => {
  assert.throws(() => new ExpiringCache({ maxEntries: 0 }), /maxEntries 0 must be a positive/);
  assert.throws(() => new ExpiringCache({ maxEntries: 1.5 }), RangeError);
});
