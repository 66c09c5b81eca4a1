/**
 * Linux x86-64 (LP64) struct layouts and constants for the FFI engines (see `layout.ts`).
 * `struct epoll_event` is declared `__attribute__((packed))` on x86-64: 12 bytes, data at 4.
 * @module
 */

import type { AbiLayout } from "./abi_layout.ts";
import { LP64_LINUX } from "./layout_lp64.ts";

/** The x86-64 layout. */
export const LAYOUT_X86_64: AbiLayout = {
  arch: "x86_64",
  epollEvent: { size: 12, events: 0, data: 4 },
  ...LP64_LINUX,
};
