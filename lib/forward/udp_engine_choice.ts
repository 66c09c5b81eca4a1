/**
 * The values of `--udp-engine` (see `udp_engine.ts`), in a module of their own so that the command
 * line needs no engine code.
 * @module
 */

/** Values of `--udp-engine`. */
export const UDP_ENGINE_CHOICES = ["auto", "io_uring", "batched", "portable"] as const;
/** One value of `--udp-engine`. */
export type UdpEngineChoice = typeof UDP_ENGINE_CHOICES[number];
/** The engine in use ("io_uring": the batched engine with io_uring for its sessions' sockets). */
export type UdpEngineKind = "io_uring" | "batched" | "portable";
/** Every {@linkcode UdpEngineKind}. */
export const UDP_ENGINE_KINDS: readonly UdpEngineKind[] = ["io_uring", "batched", "portable"];
