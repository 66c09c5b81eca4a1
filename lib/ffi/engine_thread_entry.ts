/**
 * The part every native engine thread's entry module shares: on the main thread's `start` message
 * it builds the engine loop (the entry module opens libc there), answers `ready` with the loop's
 * doorbell port or `failed`, runs the loop until the stop flag, then answers `stopped`; every other
 * message goes to the loop. Imports no third-party code.
 * @module
 */

/// <reference lib="deno.worker" />

import { errorMessage } from "../util/error_message.ts";
import type { EngineNotice, StartMessage } from "./engine_messages.ts";
import { WorkerControl } from "./ffi_worker.ts";
import type { AbiLayout } from "./layout.ts";
import { currentLayout } from "./layout.ts";

/** What an engine thread runs. */
export interface EngineThreadLoop<M> {
  /** Where the loop's doorbell listens (UDP on 127.0.0.1). */
  readonly doorbellPort: number;
  /** Applies one message of the main thread. */
  handle(message: M): void;
  /** Runs until the stop flag is set. */
  run(): Promise<void>;
}

/** Builds a thread's loop: its layout, stop flag, counter row and how it posts to the main thread. */
export type LoopFactory<M> = (
  layout: AbiLayout,
  control: WorkerControl,
  row: number,
  post: (message: unknown) => void,
) => EngineThreadLoop<M>;

/** Makes this worker an engine thread whose loop `create` builds at `start`. */
export function serveEngineThread<M>(create: LoopFactory<M>): void {
  let loop: EngineThreadLoop<M> | undefined;
  const post = (message: unknown) => self.postMessage(message);
  const notice = (message: EngineNotice) => post(message);
  const start = ({ control, row }: StartMessage) => {
    try {
      const layout = currentLayout();
      if (layout === undefined) {
        throw new Error(`no struct layout for ${Deno.build.os}/${Deno.build.arch}`);
      }
      loop = create(layout, new WorkerControl(control), row, post);
    } catch (error) {
      notice({ kind: "failed", message: errorMessage(error) });
      return;
    }
    notice({ kind: "ready", doorbellPort: loop.doorbellPort });
    loop.run().then(
      () => notice({ kind: "stopped" }),
      (error: unknown) => {
        notice({ kind: "failed", message: errorMessage(error) });
        notice({ kind: "stopped" });
      },
    );
  };
  self.onmessage = (event: MessageEvent<StartMessage | M>) => {
    const message = event.data;
    if (isStart(message)) start(message);
    else loop?.handle(message);
  };
}

function isStart(message: unknown): message is StartMessage {
  return (message as { kind?: unknown }).kind === "start";
}
