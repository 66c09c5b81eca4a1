import assert from "node:assert/strict";
import { LogThrottle } from "./log_throttle.ts";

Deno.test("LogThrottle.take() lets one event through per interval and counts the rest", () => {
  const throttle = new LogThrottle(1000);
  assert.equal(throttle.take(10_000), 0);
  assert.equal(throttle.take(10_500), undefined);
  assert.equal(throttle.take(10_999), undefined);
  assert.equal(throttle.take(11_000), 2);
  assert.equal(throttle.take(12_000), 0);
});
