/**
 * Choosing between a native (FFI) engine and its portable fallback, shared by every FFI engine:
 * `auto` uses the native engine when this machine and the permissions allow it and its start-up
 * self-test passes, else falls back with a warning; `native` insists (an error when it cannot
 * run); `portable` never starts it.
 * @module
 */

import { getLogger } from "@logtape/logtape";
import { currentLayout } from "./layout.ts";
import { errorMessage } from "../util/error_message.ts";

const log = getLogger(["undying-proxy", "ffi"]);

/** What the user asked for (each engine names `native` after itself, e.g. `batched`). */
export type EngineChoice = "auto" | "native" | "portable";

/** Why native engines cannot run here, or undefined when they can. */
export function nativeUnavailableReason(): string | undefined {
  if (currentLayout() === undefined) {
    return `no native engine for ${Deno.build.os}/${Deno.build.arch} (Linux x86-64 or aarch64 only)`;
  }
  if (Deno.permissions.querySync({ name: "ffi" }).state !== "granted") {
    return "FFI is not permitted (--allow-ffi)";
  }
  return undefined;
}

/** How to start and check one native engine. */
export interface NativeEngineStarter<E> {
  /** For logs, e.g. "batched UDP". */
  readonly name: string;
  readonly choice: EngineChoice;
  /** Starts the engine (its threads). */
  readonly start: () => Promise<E>;
  /** Proves the engine works on loopback; throws what is off. */
  readonly selfTest: (engine: E) => Promise<void>;
  /** Stops an engine whose self-test failed. */
  readonly close: (engine: E) => Promise<void>;
}

/**
 * The started and self-tested native engine, or undefined for the portable one.
 * @throws when `choice` is `native` and the engine cannot run.
 */
export async function startNativeEngine<E>(
  starter: NativeEngineStarter<E>,
): Promise<E | undefined> {
  if (starter.choice === "portable") return undefined;
  let engine: E | undefined;
  try {
    const unavailable = nativeUnavailableReason();
    if (unavailable !== undefined) throw new Error(unavailable);
    engine = await starter.start();
    await starter.selfTest(engine);
    return engine;
  } catch (error) {
    if (engine !== undefined) await starter.close(engine);
    const reason = errorMessage(error);
    if (starter.choice === "native") {
      throw new Error(`The ${starter.name} engine cannot run: ${reason}`);
    }
    log.warn("The {engine} engine cannot run ({reason}); using the portable engine", {
      engine: starter.name,
      reason,
    });
    return undefined;
  }
}
