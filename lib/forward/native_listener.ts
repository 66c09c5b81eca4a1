/**
 * What the listeners of both native engines (splice TCP, batched UDP) do alike on the main thread:
 * bind one port on every engine thread, and turn an engine thread's account of a connection or
 * session into an access record.
 * @module
 */

import { type EndReason, splitForwarderName, writeAccessRecord } from "./access_log.ts";
import type { Protocol } from "./state.ts";

/** An engine thread's answer to a listen request. */
export type ListenAnswer =
  | { readonly kind: "listening"; readonly port: number }
  | { readonly kind: "listenFailed"; readonly message: string }
  | { readonly kind: string };

/**
 * Binds a listener on threads `0 … threads - 1` in turn (port 0 on the first: the others take the
 * port it got) and returns the port. When one fails, the threads already bound close it again and
 * the failure (the bind error named by errno) is thrown.
 */
export async function bindEveryThread(
  threads: number,
  port: number,
  bind: (index: number, port: number) => Promise<ListenAnswer>,
  unbind: (index: number) => Promise<unknown>,
): Promise<number> {
  let bound = 0;
  try {
    for (; bound < threads; bound++) {
      const answer = await bind(bound, port);
      if (answer.kind !== "listening" || !("port" in answer)) {
        throw new Error("message" in answer ? answer.message : answer.kind);
      }
      port = answer.port;
    }
  } catch (error) {
    await Promise.all(
      Array.from({ length: bound }, (_, index) => unbind(index).catch(() => {})),
    );
    throw error;
  }
  return port;
}

/** The listener a record belongs to. */
export interface RecordedListener {
  readonly forwarder: string;
  readonly protocol: Protocol;
  readonly listenPort: number;
  readonly targetHost: string;
  readonly targetPort: number;
}

/** What an engine thread tells of one connection or session (wall-clock milliseconds). */
export interface EngineTraffic {
  readonly clientAddress: string;
  readonly clientPort: number;
  readonly targetAddress?: string;
  readonly bytesClientToTarget: number;
  readonly bytesTargetToClient: number;
  readonly datagramsClientToTarget?: number;
  readonly datagramsTargetToClient?: number;
  readonly startMs: number;
  readonly endMs: number;
}

/** Writes the access record of a connection or session an engine thread ended. */
export function writeEngineRecord(
  listener: RecordedListener,
  traffic: EngineTraffic,
  endReason: EndReason,
  endDetail: string | undefined,
): void {
  const { startMs, endMs, ...counts } = traffic;
  writeAccessRecord({
    ...listener,
    ...splitForwarderName(listener.forwarder),
    ...counts,
    startTime: new Date(startMs).toISOString(),
    durationMs: endMs - startMs,
    endReason,
    ...(endDetail !== undefined && { endDetail }),
  });
}
