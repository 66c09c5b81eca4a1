import assert from "node:assert/strict";
import { proxy } from "../../tests/_support/proxy_fixture.ts";
import {
  compareAge,
  desiredFromProxies,
  INSTANCE_ANNOTATION,
  isSelected,
  selectProxies,
} from "./desired_from_proxies.ts";

Deno.test("desiredFromProxies() orders specs oldest first, then by namespace/name", () => {
  const objects = [
    proxy("young").created("2026-03-01T00:00:00Z").tcp(7002).build(),
    proxy("b", "z").created("2026-01-01T00:00:00Z").tcp(7001).build(),
    proxy("a", "z").created("2026-01-01T00:00:00Z").tcp(7000).build(),
    proxy("oldest").created("2025-12-31T00:00:00Z").udp(7003).build(),
  ];
  const desired = desiredFromProxies(objects, "");
  assert.deepEqual(desired.specs.map((s) => s.name), [
    "proxy/oldest",
    "z/a",
    "z/b",
    "proxy/young",
  ]);
  assert.deepEqual(desired.invalid, []);
});

Deno.test("desiredFromProxies() names forwarders namespace/name and applies UDP defaults", () => {
  const [spec] = desiredFromProxies([proxy("game").udp(7000, 9000, "svc").build()], "").specs;
  assert.equal(spec?.name, "proxy/game");
  assert.equal(spec?.udp?.readTimeoutSeconds, 30);
  assert.equal(spec?.udp?.writeTimeoutSeconds, 5);
  assert.equal(spec?.tcp, undefined);
});

Deno.test("desiredFromProxies() reports an invalid spec whole and never half-starts it", () => {
  const desired = desiredFromProxies([
    proxy("bad").tcp(70000).udp(7001).build(),
    proxy("good").tcp(7002).build(),
  ], "");
  assert.deepEqual(desired.specs.map((s) => s.name), ["proxy/good"]);
  assert.equal(desired.invalid.length, 1);
  assert.equal(desired.invalid[0]?.name, "proxy/bad");
  assert.ok(
    desired.invalid[0]?.problems.some((p) => p.field.endsWith("tcp.listenPort")),
    JSON.stringify(desired.invalid),
  );
});

Deno.test("desiredFromProxies() leaves out objects being deleted", () => {
  const desired = desiredFromProxies([proxy("gone").tcp(7000).deleting().build()], "");
  assert.deepEqual(desired, { specs: [], invalid: [] });
});

Deno.test("isSelected() matches the instance annotation; no name means no annotation", () => {
  const plain = proxy("a").build();
  const blue = proxy("b").annotate(INSTANCE_ANNOTATION, "blue").build();
  const empty = proxy("c").annotate(INSTANCE_ANNOTATION, "").build();
  assert.deepEqual([isSelected(plain, ""), isSelected(blue, ""), isSelected(empty, "")], [
    true,
    false,
    true,
  ]);
  assert.deepEqual([isSelected(plain, "blue"), isSelected(blue, "blue")], [false, true]);
  assert.deepEqual(selectProxies([plain, blue], "blue").map((o) => o.metadata.name), ["b"]);
  assert.deepEqual(desiredFromProxies([blue], "").specs, []);
});

Deno.test("compareAge() puts objects without a timestamp last", () => {
  const noTime = proxy("a").build();
  delete noTime.metadata.creationTimestamp;
  const timed = proxy("z").build();
  assert.ok(compareAge(timed, noTime) < 0);
  assert.ok(compareAge(noTime, timed) > 0);
  assert.equal(compareAge(noTime, structuredClone(noTime)), 0);
});
