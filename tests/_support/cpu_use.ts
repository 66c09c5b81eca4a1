/**
 * What a test's process spends on CPU while something runs, and the sparse UDP traffic that shows
 * whether engine threads sleep between datagrams (busy polling) or not.
 * @module
 */

import process from "node:process";
import { sleep } from "../../lib/util/abortable_delay.ts";
import { udpClient } from "./net_udp.ts";

/** CPU milliseconds this process spends while `work` runs, and the wall-clock milliseconds. */
export async function cpuDuring(
  work: () => Promise<unknown>,
): Promise<{ readonly cpuMs: number; readonly wallMs: number }> {
  const startedAt = performance.now();
  const before = process.cpuUsage();
  await work();
  const used = process.cpuUsage(before);
  return { cpuMs: (used.user + used.system) / 1000, wallMs: performance.now() - startedAt };
}

/** One round trip through UDP port `port` on 127.0.0.1 every 2 ms, for `ms`. */
export async function sparseUdpTraffic(port: number, ms: number): Promise<void> {
  using client = udpClient();
  const until = performance.now() + ms;
  while (performance.now() < until) {
    await client.request(new Uint8Array(32), port);
    await sleep(2);
  }
}
