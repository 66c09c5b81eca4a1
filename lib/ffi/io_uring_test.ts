import assert from "node:assert/strict";
import { OsError } from "./errno.ts";
import { BufferRing, CompletionFlag, Ring, URING_SYMBOLS } from "./io_uring.ts";
import { NativeArena } from "./native_memory.ts";
import {
  connectedPair,
  nativeSockets as sockets,
  udpSocket,
} from "../../tests/_support/native_udp.ts";

const ECANCELED = 125;
const ETIME = 62;
const ENOBUFS = 105;
const EAGAIN = 11;
const MSG_TRUNC = 0x20;
const MSG_DONTWAIT = 0x40;

const libc = Deno.dlopen("libc.so.6", URING_SYMBOLS);
interface Completion {
  readonly userData: number;
  readonly result: number;
  readonly flags: number;
}

/** Reads (and consumes) the completions posted so far. */
function posted(ring: Ring): Completion[] {
  const all: Completion[] = [];
  let head = ring.head;
  for (const tail = ring.tail; head !== tail; head = (head + 1) >>> 0) {
    all.push({ userData: ring.userData(head), result: ring.result(head), flags: ring.flags(head) });
  }
  ring.consume(head);
  return all;
}

/** Submits and collects completions until `enough` says so (at most `waitMs`). */
function collect(ring: Ring, enough: (all: Completion[]) => boolean, waitMs = 2000): Completion[] {
  const all: Completion[] = [];
  const deadline = Date.now() + waitMs;
  while (!enough(all) && Date.now() < deadline) {
    ring.submit(1, 50);
    all.push(...posted(ring));
  }
  return all;
}

/** A `msghdr` asking for a sockaddr_in name and no control data. */
function recvMsgHeader(): NativeArena {
  const msghdr = new NativeArena(56);
  msghdr.view.setUint32(8, 16, true);
  return msghdr;
}

/** Payload, name and flags of a multishot recvmsg completion (`struct io_uring_recvmsg_out`). */
function received(buffers: BufferRing, completion: Completion) {
  const at = buffers.offsetOf(completion.flags >>> 16);
  const view = buffers.data.view;
  const payloadBytes = view.getUint32(at + 8, true);
  return {
    payloadBytes,
    flags: view.getUint32(at + 12, true),
    port: view.getUint16(at + 16 + 2, false),
    payload: buffers.data.bytes.slice(at + 32, at + 32 + Math.min(payloadBytes, buffers.size - 32)),
  };
}

function withRing(test: (ring: Ring) => void): void {
  const ring = new Ring(libc, { entries: 64, completions: 256 });
  try {
    test(ring);
  } finally {
    ring.close();
  }
}

/** As {@linkcode withRing}, with `count` buffers of `size` bytes registered as group `group`. */
function withBuffers(
  group: number,
  count: number,
  size: number,
  test: (ring: Ring, buffers: BufferRing) => void,
): void {
  withRing((ring) => {
    const buffers = new BufferRing(group, count, size);
    ring.register(buffers);
    test(ring, buffers);
  });
}

Deno.test("a multishot recvmsg posts every datagram with its sender and flags one cut short with MSG_TRUNC", () => {
  withBuffers(0, 8, 256, (ring, buffers) => {
    const { receiver, sender } = connectedPair();
    const msghdr = recvMsgHeader();
    const data = new NativeArena(300);
    data.bytes.set(new TextEncoder().encode("hello"));
    ring.recvMsgMultishot(receiver.fd, msghdr, 0, 0, 1);
    ring.send(sender.fd, data, 0, 5, 0, 2, false);
    ring.send(sender.fd, data, 0, 300, 0, 3, false);
    const all = collect(ring, (all) => all.filter((c) => c.userData === 1).length === 2);
    assert.deepEqual(all.filter((c) => c.userData !== 1).map((c) => c.result), [5, 300]);
    const [short, long] = all.filter((c) => c.userData === 1);
    assert.ok(
      (short!.flags & CompletionFlag.BUFFER) !== 0 && (short!.flags & CompletionFlag.MORE) !== 0,
    );
    const first = received(buffers, short!);
    assert.equal(new TextDecoder().decode(first.payload), "hello");
    assert.equal(first.port, sender.port);
    assert.equal(first.flags & MSG_TRUNC, 0);
    const second = received(buffers, long!);
    assert.notEqual(second.flags & MSG_TRUNC, 0, "cut short: flagged, to be dropped");
    assert.equal(second.payloadBytes, 256 - 32, "what fit after the header and the name");
    sockets.close(receiver.fd);
    sockets.close(sender.fd);
  });
});

Deno.test("a quiet send with MSG_DONTWAIT to a full peer completes only with -EAGAIN; without MSG_DONTWAIT, it waits in the ring", () => {
  withRing((ring) => {
    assert.ok(ring.skipsSuccess, "Linux 5.17+");
    const pair = new Int32Array(2);
    assert.equal(sockets.socketpair(1, 2, 0, pair), 0); // AF_UNIX, SOCK_DGRAM: the peer's queue fills
    const data = new NativeArena(1024);
    for (let i = 0; i < 200; i++) ring.send(pair[0]!, data, 0, 1024, MSG_DONTWAIT, 1, true);
    const failed = collect(ring, () => false, 200);
    assert.ok(failed.length > 0 && failed.length < 200, `${failed.length} of 200 failed`);
    assert.ok(failed.every((c) => c.result === -EAGAIN), "successes post nothing");
    ring.send(pair[0]!, data, 0, 1024, 0, 2, false);
    assert.deepEqual(collect(ring, () => false, 200), [], "parked until the peer reads");
    sockets.close(pair[0]!);
    sockets.close(pair[1]!);
  });
});

Deno.test("a send with MSG_DONTWAIT is done when io_uring_enter returns: its buffer can be reused at once", () => {
  withBuffers(0, 8, 256, (ring, buffers) => {
    const { receiver, sender } = connectedPair();
    const data = new NativeArena(8);
    const names = new NativeArena(16);
    names.bytes.set(receiver.name);
    data.bytes.set(new TextEncoder().encode("first"));
    ring.send(sender.fd, data, 0, 5, MSG_DONTWAIT, 2, true);
    ring.sendTo(sender.fd, data, 1, 4, MSG_DONTWAIT, 3, true, names, 0, 16);
    ring.submit(0, 0);
    assert.equal(ring.queued, 0);
    data.bytes.set(new TextEncoder().encode("later"));
    ring.recvMsgMultishot(receiver.fd, recvMsgHeader(), 0, 0, 1);
    const all = collect(ring, (all) => all.length === 2);
    assert.deepEqual(
      all.map((c) => new TextDecoder().decode(received(buffers, c).payload)),
      ["first", "irst"],
    );
    sockets.close(receiver.fd);
    sockets.close(sender.fd);
  });
});

Deno.test("a send on a registered socket goes out through its slot; the table holds the socket until unfix", () => {
  withBuffers(0, 8, 256, (ring, buffers) => {
    ring.registerFiles(4096);
    const { receiver, sender } = connectedPair();
    assert.ok(ring.fix(sender.fd));
    const data = new NativeArena(8);
    data.bytes.set(new TextEncoder().encode("fixed"));
    ring.send(sender.fd, data, 0, 5, MSG_DONTWAIT, 2, false);
    ring.recvMsgMultishot(receiver.fd, recvMsgHeader(), 0, 0, 1);
    const all = collect(ring, (all) => all.length === 2);
    assert.equal(all.find((c) => c.userData === 2)?.result, 5);
    const datagram = all.find((c) => c.userData === 1)!;
    assert.equal(new TextDecoder().decode(received(buffers, datagram).payload), "fixed");
    sockets.close(sender.fd);
    const probe = sockets.socket(2, 2, 0);
    assert.equal(sockets.bind(probe, sender.name, 16), -1, "the port is taken: the table holds it");
    ring.unfix(sender.fd);
    assert.equal(sockets.bind(probe, sender.name, 16), 0, "closed once out of the table");
    sockets.close(probe);
    sockets.close(receiver.fd);
  });
});

Deno.test("a multishot receive cancelled by its user_data ends with -ECANCELED, also once its socket is closed", () => {
  withBuffers(0, 4, 128, (ring) => {
    const socket = udpSocket();
    ring.recvMsgMultishot(socket.fd, recvMsgHeader(), 0, 0, 1);
    ring.submit(0, 0);
    // As the engine ends a session: the cancel is queued, the socket closed, then both submitted.
    ring.cancel(1, 2);
    sockets.close(socket.fd);
    const all = collect(ring, (all) => all.length === 2);
    const receive = all.find((c) => c.userData === 1)!;
    assert.equal(receive.result, -ECANCELED);
    assert.equal(receive.flags & CompletionFlag.MORE, 0, "no more completions follow");
    assert.equal(all.find((c) => c.userData === 2)!.result, 0, "the request was found");
  });
});

Deno.test("a wait without a time limit ends with a timer entry; each queued timer keeps its own time", () => {
  withRing((ring) => {
    // Both timers go out in one submission: a shared timespec would give them the same time.
    ring.timeout(30, 1);
    ring.timeout(5_000, 2);
    const started = performance.now();
    ring.submit(1, Infinity);
    const waitedMs = performance.now() - started;
    const all = posted(ring);
    assert.deepEqual(
      all.map((c) => [c.userData, c.result]),
      [[1, -ETIME]],
      "only the short timer fired",
    );
    assert.ok(waitedMs >= 25 && waitedMs < 2_500, `waited ${waitedMs} ms for a 30 ms timer`);
    ring.removeTimeout(2, 3);
    const removed = collect(ring, (all) => all.length === 2);
    assert.equal(removed.find((c) => c.userData === 2)?.result, -ECANCELED, "the long timer ended");
    assert.equal(removed.find((c) => c.userData === 3)?.result, 0, "the removal found it");
  });
});

Deno.test("poll submits and collects what completed without waiting (deferred receives included)", () => {
  withBuffers(0, 8, 256, (ring, buffers) => {
    const { receiver, sender } = connectedPair();
    const msghdr = recvMsgHeader();
    ring.recvMsgMultishot(receiver.fd, msghdr, 0, 0, 1);
    assert.equal(ring.poll(), 1);
    assert.deepEqual(posted(ring), [], "nothing to receive: it returned without waiting");
    const data = new NativeArena(8);
    data.bytes.set(new TextEncoder().encode("ping"));
    ring.send(sender.fd, data, 0, 4, 0, 2, false);
    assert.equal(ring.poll(), 1);
    const all = posted(ring);
    assert.deepEqual(all.map((c) => c.userData), [2, 1], "the send, then the receive it caused");
    assert.equal(all[0]!.result, 4);
    assert.equal(new TextDecoder().decode(received(buffers, all[1]!).payload), "ping");
    sockets.close(receiver.fd);
    sockets.close(sender.fd);
  });
});

Deno.test("a dry buffer ring ends a multishot receive with -ENOBUFS; recycled buffers and a new receive resume", () => {
  withBuffers(3, 2, 128, (ring, buffers) => {
    const { receiver, sender } = connectedPair();
    const msghdr = recvMsgHeader();
    const data = new NativeArena(8);
    ring.recvMsgMultishot(receiver.fd, msghdr, 0, 3, 1);
    for (let i = 0; i < 3; i++) {
      data.bytes[0] = i;
      ring.send(sender.fd, data, 0, 8, 0, 2, false);
      ring.submit(0, 0);
    }
    const first = collect(ring, (all) => all.some((c) => c.userData === 1 && c.result < 0))
      .filter((c) => c.userData === 1);
    assert.deepEqual(first.map((c) => c.result > 0 ? "datagram" : c.result), [
      "datagram",
      "datagram",
      -ENOBUFS,
    ]);
    assert.equal(first[2]!.flags & CompletionFlag.MORE, 0);
    for (const c of first.slice(0, 2)) buffers.recycle(c.flags >>> 16);
    buffers.publish();
    ring.recvMsgMultishot(receiver.fd, msghdr, 0, 3, 4);
    const again = collect(ring, (all) => all.length === 1);
    assert.equal(
      received(buffers, again[0]!).payload[0],
      2,
      "the third datagram waited in the socket",
    );
    sockets.close(receiver.fd);
    sockets.close(sender.fd);
  });
});

Deno.test("a refused io_uring_setup names the call and the error", () => {
  assert.throws(
    () => new Ring(libc, { entries: 0, completions: 0 }),
    (error) => error instanceof OsError && /^io_uring_setup: .*EINVAL/.test(error.message),
  );
});

Deno.test("a buffer ring refuses a count that is not a power of two", () => {
  assert.throws(() => new BufferRing(0, 3, 64), /Buffer count 3 is not a power of two/);
});
