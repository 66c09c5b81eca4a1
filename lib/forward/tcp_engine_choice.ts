/**
 * The values of `--tcp-engine` (see `tcp_engine.ts`), in a module of their own so that the command
 * line needs no engine code.
 * @module
 */

/** Values of `--tcp-engine`. */
export const TCP_ENGINE_CHOICES = ["auto", "splice", "portable"] as const;
/** One value of `--tcp-engine`. */
export type TcpEngineChoice = typeof TCP_ENGINE_CHOICES[number];
/** The engine in use. */
export type TcpEngineKind = "splice" | "portable";
