import assert from "node:assert/strict";
import { BufferPool, sharedBufferPool } from "./buffer_pool.ts";

Deno.test("BufferPool hands out distinct, non-overlapping buffers of slotBytes", () => {
  const pool = new BufferPool(1000, 4000);
  const buffers = Array.from({ length: 10 }, () => pool.acquire());
  for (const buffer of buffers) assert.equal(buffer.length, 1000);
  const ranges = buffers.map((b) => [b.buffer, b.byteOffset] as const);
  const distinct = new Set(ranges.map(([buffer, offset]) => `${slabId(buffer)}:${offset}`));
  assert.equal(distinct.size, 10);
  buffers.forEach((b, i) => b.fill(i));
  buffers.forEach((b, i) => assert.ok(b.every((x) => x === i), `buffer ${i} kept its bytes`));
  assert.equal(pool.inUse, 10);
  assert.equal(pool.slabs, 3); // 4 slots per slab
  for (const buffer of buffers) pool.release(buffer);
  assert.equal(pool.inUse, 0);
});

/** A stable id per ArrayBuffer, to tell slabs apart in the test above. */
const ids = new Map<ArrayBufferLike, number>();
function slabId(buffer: ArrayBufferLike): number {
  if (!ids.has(buffer)) ids.set(buffer, ids.size);
  return ids.get(buffer)!;
}

Deno.test("BufferPool reuses the last released slot first and keeps one empty slab", () => {
  const pool = new BufferPool(1000, 2000);
  const [a, b, c] = [pool.acquire(), pool.acquire(), pool.acquire()];
  assert.equal(pool.slabs, 2);
  pool.release(a);
  const again = pool.acquire();
  assert.equal(again.buffer, a.buffer);
  assert.equal(again.byteOffset, a.byteOffset);
  pool.release(again);
  pool.release(b);
  pool.release(c);
  assert.equal(pool.slabs, 1, "one spare slab stays mapped, the other is dropped");
});

Deno.test("BufferPool.release() refuses foreign buffers and double releases", () => {
  const pool = new BufferPool(16, 64);
  const buffer = pool.acquire();
  assert.throws(() => pool.release(new Uint8Array(16)), /not an outstanding buffer/);
  assert.throws(() => pool.release(buffer.subarray(0, 8)), /not an outstanding buffer/);
  pool.release(buffer);
  assert.throws(() => pool.release(buffer), /not an outstanding buffer/);
  assert.throws(() => new BufferPool(0), /slotBytes 0/);
});

Deno.test("sharedBufferPool() returns one pool per size", () => {
  assert.equal(sharedBufferPool(4096), sharedBufferPool(4096));
  assert.notEqual(sharedBufferPool(4096), sharedBufferPool(8192));
});
