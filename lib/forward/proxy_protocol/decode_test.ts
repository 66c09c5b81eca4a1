import assert from "node:assert/strict";
import { parseProxyHeader, type ProxyHeaderParse } from "./decode.ts";
import { encodeProxyHeader, proxyEndpoints } from "./encode.ts";

const bytes = (text: string) => new TextEncoder().encode(text);
const fromHex = (hex: string) => Uint8Array.from(hex.match(/../g) ?? [], (b) => parseInt(b, 16));
const SIGNATURE = "0d0a0d0a000d0a515549540a";

function fault(parsed: ProxyHeaderParse): string {
  return parsed.kind === "rejected" ? parsed.fault : parsed.kind;
}

Deno.test("v1 TCP4/TCP6/UNKNOWN are accepted with their length", () => {
  const line = "PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n";
  assert.deepEqual(parseProxyHeader(bytes(line + "GET /")), {
    kind: "accepted",
    version: 1,
    length: line.length,
    source: { hostname: "192.168.0.1", port: 56324 },
    destination: { hostname: "192.168.0.11", port: 443 },
  });
  const v6 = parseProxyHeader(bytes("PROXY TCP6 2001:DB8::1 ::ffff:1.2.3.4 0 65535\r\n"));
  assert.equal(v6.kind === "accepted" && v6.source?.hostname, "2001:db8::1");
  assert.equal(v6.kind === "accepted" && v6.destination?.hostname, "::ffff:1.2.3.4");
  assert.deepEqual(parseProxyHeader(bytes("PROXY UNKNOWN ffff:: 1 2 3\r\nx")), {
    kind: "accepted",
    version: 1,
    length: 28,
  });
});

Deno.test("every prefix of a header is incomplete, not rejected", () => {
  const endpoints = proxyEndpoints({ hostname: "::1", port: 9 }, { hostname: "::2", port: 10 });
  for (
    const header of [
      encodeProxyHeader("v1", "stream", endpoints),
      encodeProxyHeader("v2", "stream", endpoints),
    ]
  ) {
    for (let n = 0; n < header.length; n++) {
      assert.equal(parseProxyHeader(header.subarray(0, n)).kind, "incomplete", `${n} bytes`);
    }
    const whole = parseProxyHeader(header);
    assert.equal(whole.kind === "accepted" && whole.length, header.length);
  }
});

Deno.test("v2 PROXY INET/INET6 round trip, LOCAL and UNSPEC carry no address, TLVs are skipped", () => {
  const v4 = parseProxyHeader(fromHex(`${SIGNATURE}2111000c7f0000017f00000204d20050`));
  assert.deepEqual(v4, {
    kind: "accepted",
    version: 2,
    length: 28,
    source: { hostname: "127.0.0.1", port: 1234 },
    destination: { hostname: "127.0.0.2", port: 80 },
  });
  const withTlv = parseProxyHeader(
    fromHex(`${SIGNATURE}21110013` + "7f0000017f00000204d20050" + "0400047465737" + "4ff"),
  );
  assert.equal(withTlv.kind === "accepted" && withTlv.length, 35);
  const ipv6 = proxyEndpoints({ hostname: "2001:db8::7", port: 4 }, { hostname: "::1", port: 5 });
  const parsed6 = parseProxyHeader(encodeProxyHeader("v2", "dgram", ipv6));
  assert.equal(parsed6.kind === "accepted" && parsed6.source?.hostname, "2001:db8::7");
  assert.deepEqual(parseProxyHeader(fromHex(`${SIGNATURE}20000000`)), {
    kind: "accepted",
    version: 2,
    length: 16,
  });
  // LOCAL with an INET block: the addresses are ignored.
  assert.deepEqual(parseProxyHeader(fromHex(`${SIGNATURE}2011000c${"00".repeat(12)}`)), {
    kind: "accepted",
    version: 2,
    length: 28,
  });
});

Deno.test("anything but a header is refused by reason", () => {
  const cases: [string, Uint8Array, string][] = [
    ["plain data", bytes("GET / HTTP/1.1\r\n"), "missing"],
    ["lower case", bytes("proxy TCP4 1.1.1.1 2.2.2.2 1 2\r\n"), "missing"],
    ["TLS hello", fromHex("160301"), "missing"],
    ["v1 no CRLF in 107 bytes", bytes("PROXY TCP4 " + "1".repeat(100)), "malformed"],
    ["v1 bare LF", bytes("PROXY TCP4 1.1.1.1 2.2.2.2 1 2\n"), "malformed"],
    ["v1 bad family", bytes("PROXY UDP4 1.1.1.1 2.2.2.2 1 2\r\n"), "malformed"],
    ["v1 v6 in TCP4", bytes("PROXY TCP4 ::1 ::1 1 2\r\n"), "malformed"],
    ["v1 bad address", bytes("PROXY TCP4 1.1.1.256 2.2.2.2 1 2\r\n"), "malformed"],
    ["v1 port too big", bytes("PROXY TCP4 1.1.1.1 2.2.2.2 65536 2\r\n"), "malformed"],
    ["v1 leading zero", bytes("PROXY TCP4 1.1.1.1 2.2.2.2 01 2\r\n"), "malformed"],
    ["v1 double space", bytes("PROXY TCP4  1.1.1.1 2.2.2.2 1 2\r\n"), "malformed"],
    ["v1 missing field", bytes("PROXY TCP4 1.1.1.1 2.2.2.2 1\r\n"), "malformed"],
    ["v2 version 1", fromHex(`${SIGNATURE}1111000c`), "malformed"],
    ["v2 command 2", fromHex(`${SIGNATURE}2211000c`), "malformed"],
    ["v2 family 4", fromHex(`${SIGNATURE}2141000c`), "malformed"],
    ["v2 transport 3", fromHex(`${SIGNATURE}2113000c`), "malformed"],
    ["v2 short INET block", fromHex(`${SIGNATURE}2111000b`), "malformed"],
    ["v2 short INET6 block", fromHex(`${SIGNATURE}21210023`), "malformed"],
    ["v2 too long", fromHex(`${SIGNATURE}2111fff0`), "malformed"],
    ["v2 broken signature", fromHex("0d0a0d0a000d0a515549540b"), "missing"],
  ];
  for (const [name, input, expected] of cases) {
    assert.equal(fault(parseProxyHeader(input)), expected, name);
  }
  assert.equal(fault(parseProxyHeader(fromHex(`${SIGNATURE}21110100`), 200)), "malformed");
});
