import assert from "node:assert/strict";
import { NativeArena } from "./native_memory.ts";

/** The address `Deno.UnsafePointer` reports for byte `offset` of `arena`. */
function addressOf(arena: NativeArena, offset: number): bigint {
  return BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(arena.bytes))) + BigInt(offset);
}

Deno.test("NativeArena writes absolute addresses as two 32-bit halves", () => {
  const arena = new NativeArena(1 << 20);
  const other = new NativeArena(64);
  arena.setPointer(0, 12_345);
  arena.setPointerTo(8, other, 40);
  arena.setNull(16);
  arena.setSize(24, 2 ** 40 + 7);
  assert.equal(arena.view.getBigUint64(0, true), addressOf(arena, 12_345));
  assert.equal(arena.view.getBigUint64(8, true), addressOf(other, 40));
  assert.equal(arena.view.getBigUint64(16, true), 0n);
  assert.equal(arena.view.getBigUint64(24, true), 2n ** 40n + 7n);
  assert.equal(BigInt(arena.address(12_345)), addressOf(arena, 12_345));
});

Deno.test("NativeArena refuses offsets outside the target arena", () => {
  const arena = new NativeArena(64);
  assert.throws(() => arena.setPointer(0, 65), RangeError);
  assert.throws(() => arena.setPointerTo(0, new NativeArena(8), -1), RangeError);
});
