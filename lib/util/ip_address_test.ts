import assert from "node:assert/strict";
import { formatIp, ipBytes, parseIpv4, parseIpv6 } from "./ip_address.ts";

Deno.test("IPv6 text forms parse to the same bytes and format per RFC 5952", () => {
  for (
    const [input, canonical] of [
      ["::", "::"],
      ["::1", "::1"],
      ["2001:0DB8:0:0:1:0:0:1", "2001:db8::1:0:0:1"],
      ["fe80::1%eth0", "fe80::1"],
      ["1:2:3:4:5:6:7:8", "1:2:3:4:5:6:7:8"],
      ["1:0:3:4:5:6:7:8", "1:0:3:4:5:6:7:8"],
      ["64:ff9b::192.0.2.33", "64:ff9b::c000:221"],
      ["::ffff:1.2.3.4", "::ffff:1.2.3.4"],
    ]
  ) {
    assert.equal(formatIp(parseIpv6(input!)!), canonical, input);
  }
  for (
    const bad of [
      "",
      ":::",
      "1:::2",
      "1::2::3",
      "1:2:3:4:5:6:7:8:9",
      "12345::",
      "g::",
      "1:2:3:4:5:6:7",
      "::1.2.3",
      "1.2.3.4::",
    ]
  ) {
    assert.equal(parseIpv6(bad), undefined, bad);
  }
});

Deno.test("IPv4 and IPv4-mapped addresses become 4 bytes", () => {
  assert.deepEqual(ipBytes("10.1.2.3"), Uint8Array.of(10, 1, 2, 3));
  assert.deepEqual(ipBytes("::ffff:10.1.2.3"), Uint8Array.of(10, 1, 2, 3));
  assert.equal(ipBytes("::1").length, 16);
  assert.equal(parseIpv4("1.2.3"), undefined);
  assert.equal(parseIpv4("01.2.3.4"), undefined);
  assert.throws(() => ipBytes("example.com"), TypeError);
});
