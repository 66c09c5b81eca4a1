import assert from "node:assert/strict";
import { operatorTargetDefaults, TargetForbiddenError, TargetPolicy } from "./target_policy.ts";

Deno.test("TargetPolicy: the operator defaults deny loopback, unspecified, link-local and the API server", () => {
  const policy = new TargetPolicy(operatorTargetDefaults(["10.96.0.1", "127.0.0.1"]));
  assert.deepEqual(policy.forbidden("10.96.0.1"), {
    address: "10.96.0.1",
    rule: "10.96.0.1 (the API server) in --denied-target-cidrs",
  });
  assert.equal(
    policy.forbidden("127.0.0.1")?.rule,
    "127.0.0.1 (the API server) in --denied-target-cidrs",
    "the API server's rule comes first",
  );
  assert.equal(
    policy.forbidden("127.5.0.1")?.rule,
    "127.0.0.0/8 (loopback) in --denied-target-cidrs",
  );
  assert.equal(
    policy.forbidden("::ffff:127.0.0.2")?.rule,
    "127.0.0.0/8 (loopback) in --denied-target-cidrs",
  );
  assert.equal(policy.forbidden("::1")?.rule, "::1 (loopback) in --denied-target-cidrs");
  assert.equal(
    policy.forbidden("0.0.0.0")?.rule,
    "0.0.0.0/8 (unspecified) in --denied-target-cidrs",
  );
  assert.equal(policy.forbidden("::")?.rule, ":: (unspecified) in --denied-target-cidrs");
  assert.equal(
    policy.forbidden("169.254.169.254")?.rule,
    "169.254.0.0/16 (link-local, cloud metadata) in --denied-target-cidrs",
  );
  assert.equal(
    policy.forbidden("fe80::1")?.rule,
    "fe80::/10 (link-local) in --denied-target-cidrs",
  );
  for (const allowed of ["10.0.0.5", "192.168.1.1", "2001:db8::1", "::2", "8.8.8.8"]) {
    assert.equal(policy.forbidden(allowed), undefined, allowed);
  }
});

Deno.test("TargetPolicy: a denied range wins over an allowed one; an allow list restricts the rest", () => {
  const policy = new TargetPolicy({
    allowedCidrs: ["10.0.0.0/8", "fd00::/8"],
    deniedCidrs: ["10.0.0.0/24"],
  });
  assert.equal(policy.forbidden("10.1.0.1"), undefined);
  assert.equal(policy.forbidden("fd12::1"), undefined);
  assert.equal(policy.forbidden("10.0.0.9")?.rule, "10.0.0.0/24 in --denied-target-cidrs");
  assert.equal(policy.forbidden("192.168.0.1")?.rule, "not in --allowed-target-cidrs");
  assert.equal(policy.forbidden("2001:db8::1")?.rule, "not in --allowed-target-cidrs");
  assert.equal(policy.forbidden("not-an-ip")?.rule, "not an IP address");
});

Deno.test("TargetPolicy.ALLOW_ALL allows every address without parsing it", () => {
  assert.ok(TargetPolicy.ALLOW_ALL.allowsAll);
  assert.equal(TargetPolicy.ALLOW_ALL.forbidden("127.0.0.1"), undefined);
  assert.equal(new TargetPolicy({ deniedCidrs: [] }).forbidden("::1"), undefined);
  assert.throws(() => new TargetPolicy({ deniedCidrs: ["10.0.0.1/8"] }), RangeError);
});

Deno.test("TargetForbiddenError names the address and the rule", () => {
  const error = new TargetForbiddenError({ address: "::1", rule: "::1 in --denied-target-cidrs" });
  assert.equal(error.message, "target address ::1 is forbidden: ::1 in --denied-target-cidrs");
});
