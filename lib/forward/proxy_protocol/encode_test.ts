import assert from "node:assert/strict";
import {
  encodeProxyHeader,
  PROXY_V2_SIGNATURE,
  proxyEndpoints,
  proxyV2HeaderBytes,
  writeProxyV1Header,
  writeProxyV2Header,
} from "./encode.ts";

const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes);
const hex = (bytes: Uint8Array) =>
  Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
const SIGNATURE_HEX = "0d0a0d0a000d0a515549540a";

Deno.test("v2 signature is \\r\\n\\r\\n\\0\\r\\nQUIT\\n", () => {
  assert.equal(text(PROXY_V2_SIGNATURE), "\r\n\r\n\0\r\nQUIT\n");
});

Deno.test("v1 TCP4 and TCP6 lines as in the specification", () => {
  const v4 = proxyEndpoints({ hostname: "192.168.0.1", port: 56324 }, {
    hostname: "192.168.0.11",
    port: 443,
  });
  assert.equal(
    text(encodeProxyHeader("v1", "stream", v4)),
    "PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n",
  );
  const v6 = proxyEndpoints({ hostname: "2001:db8:0:0:0:0:0:1", port: 1 }, {
    hostname: "::1",
    port: 65535,
  });
  assert.equal(
    text(encodeProxyHeader("v1", "stream", v6)),
    "PROXY TCP6 2001:db8::1 ::1 1 65535\r\n",
  );
});

Deno.test("v1 of the longest addresses fits the specification's 107 bytes", () => {
  const all = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff";
  const endpoints = proxyEndpoints({ hostname: all, port: 65535 }, { hostname: all, port: 65535 });
  const out = new Uint8Array(107);
  assert.equal(writeProxyV1Header(out, 0, endpoints), 104);
  assert.throws(() => writeProxyV1Header(new Uint8Array(103), 0, endpoints), RangeError);
  assert.throws(() => encodeProxyHeader("v1", "dgram", endpoints), TypeError);
});

Deno.test("v2 IPv4 STREAM and DGRAM byte by byte", () => {
  const endpoints = proxyEndpoints({ hostname: "127.0.0.1", port: 1234 }, {
    hostname: "127.0.0.2",
    port: 80,
  });
  assert.equal(proxyV2HeaderBytes(endpoints), 28);
  assert.equal(
    hex(encodeProxyHeader("v2", "stream", endpoints)),
    `${SIGNATURE_HEX}2111000c7f0000017f00000204d20050`,
  );
  assert.equal(
    hex(encodeProxyHeader("v2", "dgram", endpoints)),
    `${SIGNATURE_HEX}2112000c7f0000017f00000204d20050`,
  );
});

Deno.test("v2 IPv6 header is 52 bytes with family 0x2", () => {
  const endpoints = proxyEndpoints({ hostname: "2001:db8::7", port: 65535 }, {
    hostname: "::1",
    port: 1,
  });
  const out = new Uint8Array(60).fill(0xee);
  assert.equal(writeProxyV2Header(out, 4, "dgram", endpoints), 52);
  assert.equal(
    hex(out.subarray(4, 56)),
    `${SIGNATURE_HEX}21220024` + "20010db8000000000000000000000007" +
      "00000000000000000000000000000001" + "ffff0001",
  );
  assert.equal(hex(out.subarray(0, 4)), "eeeeeeee");
  assert.equal(hex(out.subarray(56)), "eeeeeeee");
  assert.throws(() => writeProxyV2Header(new Uint8Array(60), 9, "dgram", endpoints), RangeError);
});

Deno.test("IPv4-mapped addresses are sent as IPv4; mixed families as IPv6", () => {
  const mapped = proxyEndpoints({ hostname: "::ffff:10.0.0.1", port: 5 }, {
    hostname: "::ffff:127.0.0.1",
    port: 6,
  });
  assert.equal(
    text(encodeProxyHeader("v1", "stream", mapped)),
    "PROXY TCP4 10.0.0.1 127.0.0.1 5 6\r\n",
  );
  const mixed = proxyEndpoints({ hostname: "10.0.0.1", port: 5 }, { hostname: "::", port: 6 });
  assert.equal(
    text(encodeProxyHeader("v1", "stream", mixed)),
    "PROXY TCP6 ::ffff:10.0.0.1 :: 5 6\r\n",
  );
  assert.throws(
    () => proxyEndpoints({ hostname: "localhost", port: 1 }, mixed as never),
    TypeError,
  );
});
