import assert from "node:assert/strict";
import { proxy } from "../../tests/_support/proxy_fixture.ts";
import { addFinalizerPatch, FINALIZER, hasFinalizer, removeFinalizerPatch } from "./finalizer.ts";

Deno.test("addFinalizerPatch() creates the list guarded by the resourceVersion when absent", () => {
  const object = proxy("a").build();
  assert.deepEqual(addFinalizerPatch(object), [
    { op: "test", path: "/metadata/resourceVersion", value: "1" },
    { op: "add", path: "/metadata/finalizers", value: [FINALIZER] },
  ]);
});

Deno.test("addFinalizerPatch() appends after testing the list other writers may change", () => {
  const object = proxy("a").finalizers("other/x").build();
  assert.deepEqual(addFinalizerPatch(object), [
    { op: "test", path: "/metadata/finalizers", value: ["other/x"] },
    { op: "add", path: "/metadata/finalizers/-", value: FINALIZER },
  ]);
  assert.equal(addFinalizerPatch(proxy("a").finalizers(FINALIZER).build()), undefined);
});

Deno.test("removeFinalizerPatch() tests and removes exactly our entry", () => {
  const object = proxy("a").finalizers("other/x", FINALIZER).build();
  assert.deepEqual(removeFinalizerPatch(object), [
    { op: "test", path: "/metadata/finalizers/1", value: FINALIZER },
    { op: "remove", path: "/metadata/finalizers/1" },
  ]);
  assert.equal(removeFinalizerPatch(proxy("a").finalizers("other/x").build()), undefined);
  assert.equal(removeFinalizerPatch(proxy("a").build()), undefined);
});

Deno.test("hasFinalizer() looks for our finalizer only", () => {
  assert.equal(hasFinalizer(proxy("a").finalizers(FINALIZER).build()), true);
  assert.equal(hasFinalizer(proxy("a").finalizers("other/x").build()), false);
  assert.equal(hasFinalizer({}), false);
});
