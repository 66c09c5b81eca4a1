import assert from "node:assert/strict";
import { formatIp } from "../../util/ip_address.ts";
import { cidrContains, findCidr, parseCidr, parseCidrList, parseIp } from "./cidr.ts";

function contains(cidr: string, address: string): boolean {
  const ip = parseIp(address);
  assert.ok(ip, `${address} parses`);
  return cidrContains(parseCidr(cidr), ip);
}

Deno.test("parseIp() reads IPv4, IPv6 (compressed, with an IPv4 tail, with a zone) and rejects the rest", () => {
  assert.deepEqual(parseIp("127.0.0.2"), { family: 4, bytes: Uint8Array.of(127, 0, 0, 2) });
  assert.equal(parseIp("::1")?.family, 6);
  assert.equal(parseIp("::1")?.bytes[15], 1);
  assert.equal(formatIp(parseIp("fe80::1%eth0")!.bytes), "fe80::1");
  assert.equal(formatIp(parseIp("64:ff9b::10.0.0.1")!.bytes), "64:ff9b::a00:1");
  assert.equal(formatIp(parseIp("1:2:3:4:5:6:7:8")!.bytes), "1:2:3:4:5:6:7:8");
  assert.equal(formatIp(parseIp("::")!.bytes), "::");
  assert.equal(formatIp(parseIp("2001:db8:0:0:1:0:0:1")!.bytes), "2001:db8::1:0:0:1");
  for (
    const bad of [
      "",
      "localhost",
      "1.2.3",
      "1.2.3.4.5",
      "256.1.1.1",
      "01.1.1.1",
      "1::2::3",
      "1:2:3:4:5:6:7:8:9",
      "1:2:3:4:5:6:7",
      "::g",
      "12345::",
      "1.2.3.4::",
    ]
  ) {
    assert.equal(parseIp(bad), undefined, bad);
  }
});

Deno.test("parseIp() treats an IPv4-mapped IPv6 address as the IPv4 address it carries", () => {
  assert.deepEqual(parseIp("::ffff:127.0.0.2"), parseIp("127.0.0.2"));
  assert.deepEqual(parseIp("::FFFF:7f00:2"), parseIp("127.0.0.2"));
  assert.ok(contains("127.0.0.0/8", "::ffff:127.0.0.3"));
  assert.ok(contains("::ffff:127.0.0.0/104", "127.0.0.3"));
  assert.ok(!contains("::ffff:127.0.0.0/104", "128.0.0.3"));
});

Deno.test("cidrContains() matches whole and partial bytes of the prefix, per family", () => {
  assert.ok(contains("10.0.0.0/8", "10.255.1.2"));
  assert.ok(!contains("10.0.0.0/8", "11.0.0.0"));
  assert.ok(contains("169.254.0.0/16", "169.254.169.254"));
  assert.ok(contains("192.168.0.0/20", "192.168.15.255"));
  assert.ok(!contains("192.168.0.0/20", "192.168.16.0"));
  assert.ok(contains("0.0.0.0/0", "8.8.8.8"));
  assert.ok(!contains("0.0.0.0/0", "::1"), "an IPv4 range never holds IPv6");
  assert.ok(contains("::/0", "2001:db8::1"));
  assert.ok(!contains("::/0", "1.2.3.4"), "an IPv6 range never holds plain IPv4");
  assert.ok(contains("fe80::/10", "febf::1"));
  assert.ok(!contains("fe80::/10", "fec0::1"));
  assert.ok(contains("::1", "::1"));
  assert.ok(!contains("::1", "::2"));
  assert.ok(contains("127.0.0.2", "127.0.0.2"));
  assert.ok(!contains("127.0.0.2", "127.0.0.3"));
  assert.ok(contains("0.0.0.0/32", "0.0.0.0"));
});

Deno.test("parseCidr() explains bad ranges: not an address, prefix out of range, host bits set", () => {
  assert.throws(() => parseCidr("example.com/8"), /not an IP address or CIDR range/);
  assert.throws(() => parseCidr("10.0.0.0/33"), /prefix length must be from 0 to 32/);
  assert.throws(() => parseCidr("fd00::/129"), /from 0 to 128/);
  assert.throws(() => parseCidr("10.0.0.0/"), /prefix length/);
  assert.throws(() => parseCidr("10.0.0.0/-1"), /prefix length/);
  assert.throws(() => parseCidr("fe80::1%eth0/64"), /not an IP address/);
  assert.throws(
    () => parseCidr("10.1.2.3/8"),
    /bits set beyond the \/8 prefix \(did you mean 10\.0\.0\.0\/8\?\)/,
  );
  assert.throws(() => parseCidr("fe80::1/10"), /did you mean fe80::\/10\?/);
  assert.equal(parseCidr(" 10.0.0.0/8 ").text, "10.0.0.0/8");
});

Deno.test("parseCidrList() splits on commas and ignores blanks; findCidr() returns the first match", () => {
  assert.deepEqual(parseCidrList(""), []);
  assert.deepEqual(parseCidrList(" , "), []);
  const list = parseCidrList("127.0.0.0/8, ::1,,10.0.0.0/8");
  assert.deepEqual(list.map((c) => c.text), ["127.0.0.0/8", "::1", "10.0.0.0/8"]);
  assert.equal(findCidr(list, parseIp("::1")!)?.text, "::1");
  assert.equal(findCidr(list, parseIp("10.9.9.9")!)?.text, "10.0.0.0/8");
  assert.equal(findCidr(list, parseIp("11.0.0.1")!), undefined);
  assert.throws(() => parseCidrList("10.0.0.0/8,nope"), /"nope" is not an IP address/);
});
