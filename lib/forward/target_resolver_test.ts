import assert from "node:assert/strict";
import { TargetResolver } from "./target_resolver.ts";

Deno.test("TargetResolver answers IP literals at once, IPv6 in canonical form", () => {
  assert.deepEqual(new TargetResolver("10.1.2.3", 53).cached(Date.now()), {
    addr: { transport: "udp", hostname: "10.1.2.3", port: 53 },
    bindHostname: "0.0.0.0",
  });
  assert.deepEqual(new TargetResolver("FD00:0:0::0001", 53).cached(Date.now()), {
    addr: { transport: "udp", hostname: "fd00::1", port: 53 },
    bindHostname: "::",
  });
  assert.deepEqual(
    new TargetResolver("::ffff:127.0.0.1", 1).cached(Date.now())?.addr.hostname,
    "127.0.0.1",
  );
});

Deno.test("TargetResolver looks names up once and caches them briefly", async () => {
  const resolver = new TargetResolver("localhost", 7); // cached for 5 s
  assert.equal(resolver.cached(Date.now()), undefined);
  const [first, second] = await Promise.all([resolver.resolve(), resolver.resolve()]);
  assert.equal(first, second, "concurrent lookups share one");
  assert.ok(["127.0.0.1", "::1"].includes(first.addr.hostname), first.addr.hostname);
  assert.equal(resolver.cached(Date.now()), first);
  assert.equal(resolver.cached(Date.now() + 5000), undefined, "expired");
});
