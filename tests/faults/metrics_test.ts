/**
 * Fault suite, point 6 of issue 12: the process's memory, file descriptors, event-loop lag and the
 * datagrams the kernel drops are exported; the config reload gauge exists only in file mode.
 */
import assert from "node:assert/strict";
import { ProgramMetrics } from "../../lib/metrics.ts";
import { startUdpEcho, udpClient } from "../_support/net_udp.ts";
import { waitUntil } from "../_support/wait.ts";
import { freePort, startProgram } from "../_support/program.ts";
import { tempConfigFile, udpDocument } from "./_config.ts";

Deno.test("process metrics and kernel drops of a UDP listener are exported", async () => {
  await using echo = startUdpEcho();
  const port = freePort();
  await using config = await tempConfigFile([udpDocument("drops", port, echo.port)]);
  await using program = await startProgram(["--config", config.path]);
  await program.waitForLog("listening", (line) => line["forwarder"] === "default/drops");
  // A burst far larger than the listener's receive buffer (it asks for 4 MiB, which the kernel caps
  // at net.core.rmem_max and doubles): the kernel drops most of it.
  // (Deno reads /proc/sys only with --allow-all: cat reads it.)
  const cat = await new Deno.Command("cat", { args: ["/proc/sys/net/core/rmem_max"] }).output();
  const rmemMax = Number(new TextDecoder().decode(cat.stdout));
  const buffer = 2 * Math.min(4 << 20, rmemMax);
  const clients = Array.from(
    { length: Math.max(200, Math.ceil((3 * buffer) / 60_000)) },
    () => udpClient(),
  );
  await Promise.all(clients.map((client) => client.send(new Uint8Array(60_000), port)));
  for (const client of clients) client[Symbol.dispose]();
  const dropped =
    'undying_proxy_udp_kernel_dropped_datagrams_total{forwarder="drops",namespace="default"}';
  await waitUntil(
    "the kernel drops to show",
    async () => ((await program.scrape()).series.get(dropped) ?? 0) > 0,
  );
  const { series, types } = await program.scrape();
  assert.equal(types.get("undying_proxy_udp_kernel_dropped_datagrams_total"), "counter");
  assert.ok((series.get("undying_proxy_udp_receive_buffer_errors_total") ?? 0) > 0);
  assert.ok((series.get("process_resident_memory_bytes") ?? 0) > 10_000_000);
  assert.ok((series.get("process_open_fds") ?? 0) > 3);
  assert.ok((series.get("process_max_fds") ?? 0) > 3);
  assert.ok(series.has("undying_proxy_event_loop_lag_seconds"));
  assert.equal(series.get("undying_proxy_config_last_reload_successful"), 1);
});

Deno.test("an idle program's main thread sleeps: no 10 ms sampling timer (prom-client's default)", async () => {
  await using echo = startUdpEcho();
  await using config = await tempConfigFile([udpDocument("idle", freePort(), echo.port)]);
  await using program = await startProgram(["--config", config.path]);
  await program.waitForLog("listening", (line) => line["forwarder"] === "default/idle");
  /** Times the main thread went to sleep and was woken since it started. */
  const wakeups = async () => {
    const status = await new Deno.Command("cat", { args: [`/proc/${program.pid}/status`] })
      .output();
    const match = /^voluntary_ctxt_switches:\s+(\d+)/m.exec(
      new TextDecoder().decode(status.stdout),
    );
    return Number(match?.[1]);
  };
  const before = await wakeups();
  await new Promise((resolve) => setTimeout(resolve, 2000));
  const woken = (await wakeups()) - before;
  // Its own timers (lag sampling 4/s, metrics, the file watch) wake it a few dozen times in 2 s; a
  // 10 ms timer alone would wake it 200 times.
  assert.ok(woken < 100, `the main thread woke ${woken} times in 2 s`);
});

Deno.test("config_last_reload_successful is left out in operator mode", async () => {
  const view = { counters: () => [], statuses: () => [] };
  const operator = new ProgramMetrics(view, { version: "1", configFile: false });
  assert.doesNotMatch(await operator.registry.metrics(), /config_last_reload_successful/);
  const file = new ProgramMetrics(view, { version: "1", configFile: true });
  assert.match(await file.registry.metrics(), /config_last_reload_successful/);
});
