/**
 * Generated UDP traffic for fuzz and soak tests: a seeded random source (reproducible runs), datagrams
 * whose content follows from (client, sequence number, size), a checksum, and bursts that send
 * many datagrams from one socket and collect as many replies.
 * @module
 */

/** A small seeded PRNG (mulberry32): the same seed gives the same run. */
export class SeededRandom {
  #state: number;

  constructor(readonly seed: number) {
    this.#state = seed >>> 0;
  }

  /** A float in [0, 1). */
  next(): number {
    let t = (this.#state = (this.#state + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /** An integer in [min, max]. */
  int(min: number, max: number): number {
    return min + Math.floor(this.next() * (max - min + 1));
  }
}

/** The datagram `seq` of `client`, `size` bytes: a fixed function of the three. */
export function generatedDatagram(client: number, seq: number, size: number): Uint8Array {
  const bytes = new Uint8Array(size);
  let x = (client * 7919 + seq * 104_729 + size) >>> 0;
  for (let i = 0; i < size; i++) {
    x = (Math.imul(x, 1_103_515_245) + 12_345) >>> 0;
    bytes[i] = x >>> 24;
  }
  return bytes;
}

/** FNV-1a over `bytes`, mixed with the length (so datagrams of zeros still differ by size). */
export function checksum(bytes: Uint8Array, seed = 0x811c9dc5): number {
  let hash = (seed ^ bytes.length) >>> 0;
  for (let i = 0; i < bytes.length; i++) hash = Math.imul(hash ^ bytes[i]!, 16_777_619) >>> 0;
  return hash;
}

/** A running checksum of a stream: `running` with the checksum of one more datagram mixed in. */
export function mixChecksum(running: number, datagramChecksum: number): number {
  let hash = running;
  for (let shift = 0; shift < 32; shift += 8) {
    hash = Math.imul(hash ^ ((datagramChecksum >>> shift) & 0xff), 16_777_619) >>> 0;
  }
  return hash;
}

/**
 * Sends every datagram of `datagrams` from `socket` to 127.0.0.1:`port`, and resolves with the
 * checksums of as many replies, in arrival order.
 * @throws after `timeoutMs` (the socket is closed then, ending the receive).
 */
export async function sendBurst(
  socket: Deno.DatagramConn,
  datagrams: readonly Uint8Array[],
  port: number,
  timeoutMs = 10_000,
): Promise<number[]> {
  const replies: number[] = [];
  const receiving = (async () => {
    const buffer = new Uint8Array(65_536);
    while (replies.length < datagrams.length) {
      const [data] = await socket.receive(buffer);
      replies.push(checksum(data));
    }
  })();
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      socket.close();
      reject(new Error(`${replies.length} of ${datagrams.length} replies within ${timeoutMs} ms`));
    }, timeoutMs);
  });
  try {
    for (const datagram of datagrams) {
      await socket.send(datagram, { transport: "udp", hostname: "127.0.0.1", port });
    }
    await Promise.race([receiving, timeout]);
    return replies;
  } finally {
    clearTimeout(timer);
    receiving.catch(() => {});
  }
}
