/**
 * Oldest wins, on every replica alike. The supervisor lets a current holder keep its port and
 * orders only newcomers, so an older object edited onto a port a younger one holds would lose it on
 * replicas that ran all along and win it on replicas that just started. Before each apply, the
 * operator therefore leaves out, for one pass, every part that holds a protocol+port an older
 * object (earlier in the desired set) also wants: the holder stops, the older object takes the port
 * once it is free, and the next pass brings the younger part back as a newcomer that reports the
 * conflict.
 * @module
 */

import type { ForwarderStatus, Protocol } from "../forward/state.ts";
import type { ForwarderSpec } from "../spec.ts";

const PROTOCOLS: readonly Protocol[] = ["tcp", "udp"];

/**
 * The desired set to apply now (see the module doc).
 * @param desired valid specs, oldest first
 * @param applied the specs applied last time, by name
 * @param statuses the supervisor's current statuses, by name
 */
export function yieldToOlder(
  desired: readonly ForwarderSpec[],
  applied: ReadonlyMap<string, ForwarderSpec>,
  statuses: ReadonlyMap<string, ForwarderStatus>,
): ForwarderSpec[] {
  const wanted = new Set<string>();
  return desired.map((spec) => {
    let result = spec;
    for (const protocol of PROTOCOLS) {
      const part = spec[protocol];
      if (part === undefined) continue;
      const key = `${protocol}/${part.listenPort}`;
      if (!wanted.has(key)) {
        wanted.add(key);
        continue;
      }
      const holds = applied.get(spec.name)?.[protocol]?.listenPort === part.listenPort &&
        statuses.get(spec.name)?.[protocol] !== undefined &&
        statuses.get(spec.name)?.[protocol]?.phase !== "conflict";
      if (holds) {
        const { [protocol]: _, ...rest } = result;
        result = rest;
      }
    }
    return result;
  });
}
