import assert from "node:assert/strict";
import { managedServices } from "./service_ports.ts";

Deno.test("managedServices() maps each flag to its Service; an empty flag disables it", () => {
  assert.deepEqual(managedServices("t", "u"), [
    { name: "t", protocols: ["TCP"] },
    { name: "u", protocols: ["UDP"] },
  ]);
  assert.deepEqual(managedServices("", "u"), [{ name: "u", protocols: ["UDP"] }]);
  assert.deepEqual(managedServices("", ""), []);
});

Deno.test("managedServices() gives one Service both protocols when both flags name it", () => {
  assert.deepEqual(managedServices("lb", "lb"), [{ name: "lb", protocols: ["TCP", "UDP"] }]);
});
