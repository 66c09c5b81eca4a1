/**
 * Fault suite, point 2 of issue 12: a flood of UDP clients each sending one maximal datagram stays
 * within --udp-buffer-budget-bytes (sessions beyond it are refused and counted), and the sessions'
 * reservations are given back once they expire.
 */
import assert from "node:assert/strict";
import { sessionBufferCharge } from "../../lib/forward/udp_forwarder.ts";
import { startUdpEcho, udpClient } from "../_support/net_udp.ts";
import { waitUntil } from "../_support/wait.ts";
import { freePort, startProgram } from "../_support/program.ts";
import { tempConfigFile, udpDocument } from "./_config.ts";

const BUDGET = 8 * 1024 * 1024;
const CLIENTS = 600;
const MAX_DATAGRAM = 65_507;

Deno.test(`${CLIENTS} clients with ${MAX_DATAGRAM}-byte datagrams stay within an ${BUDGET}-byte budget`, async () => {
  await using echo = startUdpEcho();
  const port = freePort();
  await using config = await tempConfigFile([udpDocument("flood", port, echo.port, 1)]);
  await using program = await startProgram([
    "--config",
    config.path,
    `--udp-buffer-budget-bytes=${BUDGET}`,
    // The budgets are enforced by the portable UDP engine.
    "--udp-engine=portable",
  ]);
  await program.waitForLog("listening", (line) => line["forwarder"] === "default/flood");
  const rss = async () => (await program.scrape()).series.get("process_resident_memory_bytes") ?? 0;
  const before = await rss();

  const datagram = new Uint8Array(MAX_DATAGRAM);
  let peakReserved = 0;
  // Paced (two datagrams every 5 ms): a socket receive buffer holds only a few datagrams this
  // large, and the kernel would drop the rest before the program sees them.
  for (let sent = 0; sent < CLIENTS; sent += 2) {
    const clients = [udpClient(), udpClient()];
    await Promise.all(clients.map((client) => client.send(datagram, port)));
    for (const client of clients) client[Symbol.dispose]();
    await new Promise((resolve) => setTimeout(resolve, 5));
    if (sent % 100 === 0) {
      const { series } = await program.scrape();
      const reserved = series.get("undying_proxy_udp_buffer_bytes_reserved") ?? 0;
      peakReserved = Math.max(peakReserved, reserved);
    }
  }
  const during = await program.scrape();
  const peakRss = during.series.get("process_resident_memory_bytes") ?? 0;
  const errors = (type: string) =>
    during.series.get(
      `undying_proxy_udp_forwarder_errors_total{forwarder="flood",namespace="default",type="${type}"}`,
    ) ?? 0;
  // The budget holds 97 sessions (86,016 bytes each); sessions expire after 1 s of the ~2 s
  // flood: most are refused.
  assert.equal(Math.floor(BUDGET / sessionBufferCharge(65_535)), 97);
  assert.ok(peakReserved <= BUDGET, `reserved ${peakReserved}`);
  assert.ok(errors("BufferBudget") > CLIENTS / 3, `${errors("BufferBudget")} refused`);
  assert.equal(during.series.get("undying_proxy_udp_buffer_budget_bytes"), BUDGET);
  // Memory follows the budget, not the flood (600 x 64 KiB would be 39 MB more).
  assert.ok(peakRss - before < BUDGET + 24 * 1024 * 1024, `RSS ${before} -> ${peakRss}`);

  await waitUntil("every session to expire and give its buffer back", async () => {
    const { series } = await program.scrape();
    return series.get("undying_proxy_udp_buffer_bytes_reserved") === 0 &&
      series.get('undying_proxy_udp_clients_connected{forwarder="flood",namespace="default"}') ===
        0;
  }, { timeoutMs: 10_000 });
  // Forwarding goes on for new clients.
  using client = udpClient();
  assert.equal((await client.request(new Uint8Array(32), port)).length, 32);
});
