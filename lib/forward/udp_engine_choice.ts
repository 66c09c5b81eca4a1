/**
 * The values of `--udp-engine` (see `udp_engine.ts`), in a module of their own so that the command
 * line needs no engine code.
 * @module
 */

/** Values of `--udp-engine`. */
export const UDP_ENGINE_CHOICES = ["auto", "batched", "portable"] as const;
/** One value of `--udp-engine`. */
export type UdpEngineChoice = typeof UDP_ENGINE_CHOICES[number];
/** The engine in use. */
export type UdpEngineKind = "batched" | "portable";
