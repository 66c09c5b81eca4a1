/**
 * Struct layouts and constants of the Linux C ABI that the FFI engines use, one module per
 * architecture (`layout_x86_64.ts`, `layout_aarch64.ts`); this module picks the one for the running
 * machine. Nothing else in the program hard-codes an offset or a struct size.
 * @module
 */

import type { AbiLayout } from "./abi_layout.ts";
import { LAYOUT_AARCH64 } from "./layout_aarch64.ts";
import { LAYOUT_X86_64 } from "./layout_x86_64.ts";

export type { AbiLayout };

/** The layout of the running machine, or undefined when it is not Linux on x86-64 or aarch64. */
export function currentLayout(): AbiLayout | undefined {
  if (Deno.build.os !== "linux") return undefined;
  if (Deno.build.arch === "x86_64") return LAYOUT_X86_64;
  if (Deno.build.arch === "aarch64") return LAYOUT_AARCH64;
  return undefined;
}
