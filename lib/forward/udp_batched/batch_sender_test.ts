import assert from "node:assert/strict";
import { ErrnoReader } from "../../ffi/errno.ts";
import { currentLayout } from "../../ffi/layout.ts";
import { BATCH_SYMBOLS, openLibc, SOCKET_SYMBOLS } from "../../ffi/libc.ts";
import { encodeSockaddr } from "../../ffi/sockaddr.ts";
import { BatchSender } from "./batch_sender.ts";
import { BATCH, DatagramBatch } from "./datagram_batch.ts";
import { kernelSegments, MAX_RUN_BYTES, SegmentedBatch } from "./segmented_batch.ts";
import { UdpSockets } from "./udp_sockets.ts";

const layout = currentLayout()!;
const libc = openLibc({ ...SOCKET_SYMBOLS, ...BATCH_SYMBOLS });
const errno = new ErrnoReader(libc.symbols.__errno_location);
const sockets = new UdpSockets(libc, layout, errno);
/** SO_NO_CHECK (asm-generic, x86-64 and aarch64): a socket without UDP checksums cannot segment. */
const SO_NO_CHECK = 11;

/** Datagram `k` of a test: its index and size in its first bytes, then a pattern. */
function datagram(k: number, size: number): Uint8Array {
  const bytes = new Uint8Array(size);
  for (let i = 0; i < size; i++) bytes[i] = (k * 31 + i) & 0xff;
  if (size >= 2) bytes[0] = k;
  return bytes;
}

/** A receiving batch holding `sizes.length` datagrams and a sending batch pointing at them. */
function batchOf(sizes: readonly number[], withNames: boolean) {
  const received = new DatagramBatch(layout, { withNames: false, slots: true });
  const sending = new DatagramBatch(layout, { withNames, slots: false });
  const lengths = new Int32Array(BATCH);
  sizes.forEach((size, k) => {
    received.data(k, size).set(datagram(k, size));
    sending.point(k, received, k, size);
    lengths[k] = size;
  });
  return { received, sending, lengths };
}

/** Receives `count` datagrams on `socket` (each kept whole, in order). */
async function receiveAll(socket: Deno.DatagramConn, count: number): Promise<Uint8Array[]> {
  const got: Uint8Array[] = [];
  const timer = setTimeout(() => socket.close(), 3000);
  try {
    while (got.length < count) got.push((await socket.receive(new Uint8Array(65_536)))[0]);
  } finally {
    clearTimeout(timer);
  }
  return got;
}

function loopbackReceiver(): { socket: Deno.DatagramConn; sockaddr: Uint8Array } {
  const socket = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  const port = (socket.addr as Deno.NetAddr).port;
  return { socket, sockaddr: encodeSockaddr(layout, "127.0.0.1", port) };
}

Deno.test("this kernel segments UDP sends (the start-up probe sees two datagrams)", () => {
  assert.equal(kernelSegments(libc.symbols, layout, sockets), true);
});

Deno.test("runs: equal sizes join, a shorter one ends a run, owners and limits split", () => {
  const runs = new SegmentedBatch(layout);
  const one = { segment: true };
  const sizes = [100, 100, 100, 40, 100, 200, 200, 0, 0, 7];
  const { sending, lengths } = batchOf(sizes, false);
  assert.equal(runs.build(sending, 0, sizes.length, lengths, one), 6);
  assert.deepEqual([0, 1, 2, 3, 4, 5].map((m) => runs.datagrams(m)), [4, 1, 2, 1, 1, 1]);

  const owners = [one, one, { segment: true }, { segment: false }, { segment: false }];
  const same = batchOf([10, 10, 10, 10, 10], true);
  assert.equal(runs.build(same.sending, 0, 5, same.lengths, owners), 4);
  assert.deepEqual([0, 1, 2, 3].map((m) => runs.datagrams(m)), [2, 1, 1, 1]);
  assert.deepEqual([0, 1, 2, 3].map((m) => runs.owner(m)), [one, owners[2], owners[3], owners[4]]);

  const big = 30_000;
  const large = batchOf([big, big, big], false);
  assert.ok(2 * big <= MAX_RUN_BYTES && 3 * big > MAX_RUN_BYTES);
  assert.equal(runs.build(large.sending, 0, 3, large.lengths, one), 2);
  assert.equal(runs.datagrams(0), 2);

  const many = batchOf(Array.from({ length: BATCH }, () => 8), false);
  assert.equal(runs.build(many.sending, 1, BATCH, many.lengths, one), 1);
  assert.equal(runs.datagrams(0), BATCH - 1);
});

Deno.test("a segmented send arrives as the original datagrams, whole and in order", async () => {
  const sender = new BatchSender(libc.symbols, layout, errno, sockets);
  const target = loopbackReceiver();
  const fd = sockets.connect(target.sockaddr, 4);
  try {
    const sizes = [...Array.from({ length: 20 }, () => 1200), 300, 1200, 1200, 0, 64, 64];
    const { sending, lengths } = batchOf(sizes, false);
    const owner = { segment: true };
    assert.equal(sender.send(fd, sending, 0, sizes.length, lengths, owner), sizes.length);
    assert.equal(sender.segmented, 21 + 2 + 2);
    const got = await receiveAll(target.socket, sizes.length);
    assert.deepEqual(got, sizes.map((size, k) => datagram(k, size)));
  } finally {
    sockets.close(fd);
    target.socket.close();
  }
});

Deno.test("replies to several addresses: one segmented run per address", async () => {
  const sender = new BatchSender(libc.symbols, layout, errno, sockets);
  const a = loopbackReceiver();
  const b = loopbackReceiver();
  const listener = sockets.listen("127.0.0.1", 0, false);
  try {
    const sizes = [50, 50, 50, 50, 50, 50];
    const { sending, lengths } = batchOf(sizes, true);
    const ownerA = { segment: true };
    const ownerB = { segment: true };
    const owners = [ownerA, ownerA, ownerB, ownerB, ownerB, ownerA];
    owners.forEach((owner, k) => sending.setName(k, owner === ownerA ? a.sockaddr : b.sockaddr));
    assert.equal(sender.send(listener, sending, 0, 6, lengths, owners), 6);
    assert.equal(sender.segmented, 5);
    assert.deepEqual(await receiveAll(a.socket, 3), [0, 1, 5].map((k) => datagram(k, 50)));
    assert.deepEqual(await receiveAll(b.socket, 3), [2, 3, 4].map((k) => datagram(k, 50)));
  } finally {
    sockets.close(listener);
    a.socket.close();
    b.socket.close();
  }
});

Deno.test("a dual-stack listener segments replies to an IPv4 client (IPv4-mapped address)", async () => {
  const sender = new BatchSender(libc.symbols, layout, errno, sockets);
  const client = loopbackReceiver();
  const port = (client.socket.addr as Deno.NetAddr).port;
  const listener = sockets.listen("::", 0, false);
  try {
    const sizes = [500, 500, 500, 200];
    const { sending, lengths } = batchOf(sizes, true);
    const owner = { segment: true };
    const mapped = encodeSockaddr(layout, "::ffff:127.0.0.1", port);
    sizes.forEach((_, k) => sending.setName(k, mapped));
    assert.equal(sender.send(listener, sending, 0, 4, lengths, [owner, owner, owner, owner]), 4);
    assert.equal(sender.segmented, 4);
    assert.deepEqual(await receiveAll(client.socket, 4), sizes.map((size, k) => datagram(k, size)));
  } finally {
    sockets.close(listener);
    client.socket.close();
  }
});

Deno.test("a run the kernel refuses to segment is sent again one by one, nothing lost or doubled", async () => {
  const sender = new BatchSender(libc.symbols, layout, errno, sockets);
  const target = loopbackReceiver();
  const fd = sockets.connect(target.sockaddr, 4);
  try {
    const on = new Uint8Array(new Int32Array([1]).buffer);
    assert.equal(libc.symbols.setsockopt(fd, layout.constants.SOL_SOCKET, SO_NO_CHECK, on, 4), 0);
    const sizes = [64, 64, 64, 64];
    const { sending, lengths } = batchOf(sizes, false);
    const owner = { segment: true };
    assert.equal(sender.send(fd, sending, 0, 4, lengths, owner), 0, "refused, nothing sent");
    assert.equal(owner.segment, false);
    assert.equal(sender.send(fd, sending, 0, 4, lengths, owner), 4);
    assert.equal(sender.segmented, 0);
    assert.deepEqual(await receiveAll(target.socket, 4), sizes.map((size, k) => datagram(k, size)));
  } finally {
    sockets.close(fd);
    target.socket.close();
  }
});
