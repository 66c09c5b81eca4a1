import assert from "node:assert/strict";
import type { UnDyingProxy } from "../../k8s/undying_proxy_types.ts";
import { proxy } from "../../tests/_support/proxy_fixture.ts";
import {
  removeEntriesPatch,
  statusApplyConfiguration,
  statusFieldManager,
  withdrawalPatch,
} from "./status_writer.ts";

function withReplicas(...names: string[]): UnDyingProxy {
  return proxy("game").status({ replicas: names.map((name) => ({ name })) })
    .typed();
}

Deno.test("removeEntriesPatch() removes named entries from the end, testing each name", () => {
  assert.deepEqual(removeEntriesPatch(withReplicas("a", "b", "c"), new Set(["a", "c"])), [
    { op: "test", path: "/metadata/uid", value: "uid-proxy-game" },
    { op: "test", path: "/status/replicas/2/name", value: "c" },
    { op: "remove", path: "/status/replicas/2" },
    { op: "test", path: "/status/replicas/0/name", value: "a" },
    { op: "remove", path: "/status/replicas/0" },
  ]);
  assert.equal(removeEntriesPatch(withReplicas("a"), new Set(["x"])), undefined);
  assert.equal(
    removeEntriesPatch(proxy("game").typed(), new Set(["a"])),
    undefined,
  );
});

Deno.test("statusApplyConfiguration() carries only the address, the entry and the summary", () => {
  const object = withReplicas("other");
  const entry = { name: "r1", observedGeneration: 1 };
  assert.deepEqual(statusApplyConfiguration(object, entry, undefined), {
    apiVersion: "proxy.sfact.io/v1alpha1",
    kind: "UnDyingProxy",
    metadata: { name: "game", namespace: "proxy" },
    status: { replicas: [entry] },
  });
  const summary = { ready: true, observedGeneration: 1, listening: "1/1", conditions: [] };
  assert.deepEqual(statusApplyConfiguration(object, entry, summary).status, {
    replicas: [entry],
    ...summary,
  });
  assert.equal(statusFieldManager("r1"), "undying-proxy/r1");
});

Deno.test("withdrawalPatch() tests the whole list, replaces it and writes the summary fields", () => {
  const object = withReplicas("a", "b");
  const summary = { ready: false, observedGeneration: 1, listening: "0/1", conditions: [] };
  assert.deepEqual(withdrawalPatch(object, [{ name: "a" }], summary), [
    { op: "test", path: "/metadata/uid", value: "uid-proxy-game" },
    { op: "test", path: "/status/replicas", value: [{ name: "a" }, { name: "b" }] },
    { op: "replace", path: "/status/replicas", value: [{ name: "a" }] },
    { op: "add", path: "/status/ready", value: false },
    { op: "add", path: "/status/observedGeneration", value: 1 },
    { op: "add", path: "/status/listening", value: "0/1" },
    { op: "add", path: "/status/conditions", value: [] },
  ]);
});
