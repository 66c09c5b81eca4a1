/**
 * Fault suite, point 2 of issue 12: a flood of UDP clients each sending one maximal datagram stays
 * within --udp-buffer-budget-bytes (sessions beyond it are refused and counted), and the sessions'
 * reservations are given back once they expire: on both UDP engines, each with a budget of about 97
 * sessions at what one of its sessions reserves.
 */
import assert from "node:assert/strict";
import { sessionBufferCharge } from "../../lib/forward/udp_forwarder.ts";
import { BATCHED_SESSION_BYTES } from "../../lib/forward/udp_batched/messages.ts";
import { UDP_ENGINES } from "../_support/udp_engines.ts";
import { startUdpEcho, udpClient } from "../_support/net_udp.ts";
import { waitUntil } from "../_support/wait.ts";
import { freePort, startProgram } from "../_support/program.ts";
import { tempConfigFile, udpDocument } from "./_config.ts";

const CLIENTS = 600;
const MAX_DATAGRAM = 65_507;
/** Sessions the budget holds. */
const SESSIONS = 97;

for (const engine of UDP_ENGINES) {
  // A portable session reserves its buffer's worst case, a batched one its state only.
  const charge = engine === "portable" ? sessionBufferCharge(65_535) : BATCHED_SESSION_BYTES;
  const budget = engine === "portable" ? 8 * 1024 * 1024 : SESSIONS * charge + 100;

  Deno.test(`${engine} UDP engine: ${CLIENTS} clients with ${MAX_DATAGRAM}-byte datagrams stay within a ${budget}-byte budget`, async () => {
    await using echo = startUdpEcho();
    const port = freePort();
    await using config = await tempConfigFile([udpDocument("flood", port, echo.port, 1)]);
    await using program = await startProgram([
      "--config",
      config.path,
      `--udp-buffer-budget-bytes=${budget}`,
      `--udp-engine=${engine}`,
    ]);
    await program.waitForLog("listening", (line) => line["forwarder"] === "default/flood");
    const rss = async () =>
      (await program.scrape()).series.get("process_resident_memory_bytes") ?? 0;
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
    // The budget holds 97 sessions (portable: 86,016 bytes each; batched: 4,096); sessions expire
    // after 1 s of the ~2 s flood: most are refused.
    assert.equal(Math.floor(budget / charge), SESSIONS);
    assert.ok(peakReserved <= budget, `reserved ${peakReserved}`);
    assert.ok(errors("BufferBudget") > CLIENTS / 3, `${errors("BufferBudget")} refused`);
    assert.equal(during.series.get("undying_proxy_udp_buffer_budget_bytes"), budget);
    // Memory follows the budget, not the flood (600 x 64 KiB would be 39 MB more).
    assert.ok(peakRss - before < budget + 24 * 1024 * 1024, `RSS ${before} -> ${peakRss}`);

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
}
