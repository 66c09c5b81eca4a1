/**
 * Datagrams the kernel dropped before the program could read them (a full socket receive buffer),
 * from `/proc/net/udp` and `/proc/net/udp6` (per socket) and `/proc/net/snmp` (the network
 * namespace: in a pod that is the pod's own traffic; with host networking the whole host's), read
 * by the system worker (nothing without it).
 * @module
 */
import { systemWorker } from "./ffi/system_worker_client.ts";

async function readProcFile(path: string): Promise<string | undefined> {
  return await systemWorker()?.readProcFile(path);
}

/** Kernel drops summed by local UDP port, over IPv4 and IPv6 sockets; empty when unreadable. */
export async function udpDropsByPort(): Promise<Map<number, number>> {
  const drops = new Map<number, number>();
  for (const file of ["/proc/net/udp", "/proc/net/udp6"]) {
    const text = await readProcFile(file);
    if (text === undefined) continue;
    for (const line of text.split("\n").slice(1)) {
      const fields = line.trim().split(/\s+/);
      const local = fields[1];
      const dropped = Number(fields[12]);
      if (local === undefined || !Number.isFinite(dropped)) continue;
      const port = Number.parseInt(local.slice(local.lastIndexOf(":") + 1), 16);
      drops.set(port, (drops.get(port) ?? 0) + dropped);
    }
  }
  return drops;
}

/** `RcvbufErrors` of the `Udp:` line of `/proc/net/snmp` (this network namespace), if readable. */
export async function udpReceiveBufferErrors(): Promise<number | undefined> {
  const text = await readProcFile("/proc/net/snmp");
  const [names, values] = (text ?? "").split("\n").filter((line) => line.startsWith("Udp:"));
  if (names === undefined || values === undefined) return undefined;
  const index = names.split(/\s+/).indexOf("RcvbufErrors");
  const value = Number(values.split(/\s+/)[index]);
  return index > 0 && Number.isFinite(value) ? value : undefined;
}
