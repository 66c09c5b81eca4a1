/**
 * The messages every native engine thread exchanges with the main thread besides its own requests
 * and answers (see `engine_threads.ts`). No imports: engine threads load it.
 * @module
 */

/** Messages every engine thread takes besides its requests. */
export interface StartMessage {
  readonly kind: "start";
  readonly control: SharedArrayBuffer;
  /** This thread's row in every counter block (row 0 is the main thread's). */
  readonly row: number;
}

/** Messages every engine thread sends besides its answers (which repeat a request's `seq`). */
export type EngineNotice =
  /** Started; with `doorbellPort`, the main thread rings it (UDP on 127.0.0.1) after each message. */
  | { readonly kind: "ready"; readonly doorbellPort?: number }
  | { readonly kind: "failed"; readonly message: string }
  | { readonly kind: "stopped" }
  /** An access record of a connection or session of listener `id` (its shape is the engine's). */
  | { readonly kind: "record"; readonly id: number; readonly record: unknown }
  | {
    readonly kind: "log";
    readonly level: "warn" | "error";
    readonly message: string;
    readonly properties: Record<string, unknown>;
  };
