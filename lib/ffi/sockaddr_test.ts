import assert from "node:assert/strict";
import { LAYOUT_X86_64 } from "./layout_x86_64.ts";
import { decodeSockaddr, encodeSockaddr } from "./sockaddr.ts";

const layout = LAYOUT_X86_64;

Deno.test("encodeSockaddr() builds sockaddr_in with the port in network order", () => {
  const bytes = encodeSockaddr(layout, "127.0.0.1", 0x1234);
  assert.deepEqual([...bytes.subarray(0, 8)], [2, 0, 0x12, 0x34, 127, 0, 0, 1]);
  assert.equal(bytes.length, 16);
});

Deno.test("sockaddr round trips for IPv4, IPv6 and IPv4-mapped IPv6", () => {
  for (const [hostname, family] of [["10.1.2.3", 4], ["::1", 6], ["fe80::1:2", 6]] as const) {
    const decoded = decodeSockaddr(layout, encodeSockaddr(layout, hostname, 53));
    assert.deepEqual(decoded, { family, hostname, port: 53 });
  }
  assert.deepEqual(decodeSockaddr(layout, encodeSockaddr(layout, "::ffff:1.2.3.4", 9)), {
    family: 6,
    hostname: "::ffff:1.2.3.4",
    port: 9,
  });
});

Deno.test("encodeSockaddr() refuses names and zoned addresses (no scope id is set)", () => {
  assert.throws(() => encodeSockaddr(layout, "localhost", 1), TypeError);
  assert.throws(() => encodeSockaddr(layout, "fe80::1%eth0", 1), TypeError);
  assert.throws(() => encodeSockaddr(layout, "01.2.3.4", 1), TypeError);
});
