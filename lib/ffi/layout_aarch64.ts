/**
 * Linux aarch64 (LP64, asm-generic) struct layouts and constants for the FFI engines (see
 * `layout.ts`). Unlike x86-64, `struct epoll_event` is naturally aligned: 16 bytes, data at 8.
 * @module
 */

import type { AbiLayout } from "./abi_layout.ts";
import { LP64_LINUX } from "./layout_lp64.ts";

/** The aarch64 layout. */
export const LAYOUT_AARCH64: AbiLayout = {
  arch: "aarch64",
  epollEvent: { size: 16, events: 0, data: 8 },
  ...LP64_LINUX,
};
