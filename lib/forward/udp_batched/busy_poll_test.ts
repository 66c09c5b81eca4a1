import assert from "node:assert/strict";
import { cpuDuring, sparseUdpTraffic } from "../../../tests/_support/cpu_use.ts";
import { startUdpEcho } from "../../../tests/_support/net_udp.ts";
import { udpForwarderTo } from "../../../tests/_support/udp_engines.ts";
import { sleep } from "../../util/abortable_delay.ts";
import { BusyPoll } from "./busy_poll.ts";

/** A clock the test moves: each read advances it by `stepMs`. */
function steppingClock(stepMs: number): () => number {
  let ms = 1000;
  return () => ms += stepMs;
}

Deno.test("BusyPoll: off, or with no traffic in the window, it does not poll", () => {
  let polls = 0;
  const poll = () => (polls++, 0);
  const off = new BusyPoll(steppingClock(0.001));
  off.active();
  assert.equal(off.spin(poll), 0);
  const clock = steppingClock(0.001);
  const quiet = new BusyPoll(clock);
  quiet.microseconds = 50;
  assert.equal(quiet.spin(poll), 0, "no traffic seen yet");
  quiet.active();
  for (let i = 0; i < 60; i++) clock(); // past the 50 µs window
  assert.equal(quiet.spin(poll), 0);
  assert.equal(polls, 0);
});

Deno.test("BusyPoll: after traffic, polls until something is found; noted traffic restarts the window", () => {
  const clock = steppingClock(0.001); // 1 µs per clock read
  const busy = new BusyPoll(clock);
  busy.microseconds = 50;
  busy.active();
  let polls = 0;
  assert.equal(busy.spin(() => ++polls === 3 ? 7 : 0), 7);
  assert.equal(polls, 3);
  for (let i = 0; i < 60; i++) clock(); // past the window
  assert.equal(busy.spin(() => 1), 0, "the window passed");
  busy.active(); // what was found is handled
  polls = 0;
  assert.equal(busy.spin(() => (polls++, 0)), 0);
  assert.ok(polls > 0, "polled again in the new window");
});

Deno.test("BusyPoll: gives up once the window has passed without traffic", () => {
  const clock = steppingClock(0.001);
  const busy = new BusyPoll(clock);
  busy.microseconds = 50;
  busy.active();
  let polls = 0;
  assert.equal(busy.spin(() => (polls++, -1)), 0, "errors (EINTR) are no find");
  // The clock is read every 4 polls, 1 µs apart: about 4 × 50 polls.
  assert.ok(polls >= 150 && polls <= 220, `${polls} polls`);
  assert.equal(busy.spin(() => (polls++, 0)), 0);
  busy.microseconds = 0;
  busy.active();
  assert.equal(busy.spin(() => 1), 0, "turned off");
});

for (const engine of ["batched", "io_uring"] as const) {
  Deno.test(`${engine} UDP engine: busy polling keeps the thread awake between datagrams, and lets it sleep once traffic stops`, async () => {
    await using echo = startUdpEcho();
    await using fx = await udpForwarderTo(engine, echo.port, { busyPollUs: 10_000 });
    const port = fx.forwarder.port;
    const traffic = await cpuDuring(() => sparseUdpTraffic(port, 400));
    assert.ok(
      traffic.cpuMs > traffic.wallMs * 0.5,
      `polling through 2 ms gaps: ${traffic.cpuMs} ms CPU in ${traffic.wallMs} ms`,
    );
    await sleep(50); // the 10 ms window closes
    const quiet = await cpuDuring(() => sleep(400));
    assert.ok(
      quiet.cpuMs < quiet.wallMs * 0.25,
      `idle: ${quiet.cpuMs} ms CPU in ${quiet.wallMs} ms`,
    );
  });

  Deno.test(`${engine} UDP engine: without busy polling, the thread sleeps between datagrams`, async () => {
    await using echo = startUdpEcho();
    await using fx = await udpForwarderTo(engine, echo.port);
    const traffic = await cpuDuring(() => sparseUdpTraffic(fx.forwarder.port, 400));
    assert.ok(
      traffic.cpuMs < traffic.wallMs * 0.5,
      `sleeping through 2 ms gaps: ${traffic.cpuMs} ms CPU in ${traffic.wallMs} ms`,
    );
  });
}
