import assert from "node:assert/strict";
import { URING_SYMBOLS } from "../../ffi/io_uring.ts";
import { NativeArena } from "../../ffi/native_memory.ts";
import {
  connectedPair,
  nativeSockets,
  pendingDatagram,
} from "../../../tests/_support/native_udp.ts";
import { waitUntil } from "../../../tests/_support/wait.ts";
import { EngineRing } from "./engine_ring.ts";

const libc = Deno.dlopen("libc.so.6", URING_SYMBOLS);

Deno.test("EngineRing: a send queued for a socket that closes goes out on that socket, not on the next one to take its number", async () => {
  const ring = new EngineRing<string>(libc, 28);
  const old = connectedPair();
  const next = connectedPair();
  try {
    const data = new NativeArena(8);
    data.bytes.set(new TextEncoder().encode("first"));
    ring.opened(old.sender.fd);
    ring.send(old.sender.fd, data, 0, 5, "old session", -1, true);
    ring.closing(old.sender.fd);
    nativeSockets.close(old.sender.fd);
    // A new session's socket takes the freed number before the ring is submitted again.
    const reused = nativeSockets.socket(2, 2, 0);
    assert.equal(reused, old.sender.fd, "the kernel hands out the lowest free number");
    assert.equal(nativeSockets.connect(reused, next.receiver.name, 16), 0);
    ring.opened(reused);
    ring.submit(0, 0);
    await waitUntil("the datagram at the old socket's peer", () => {
      const got = pendingDatagram(old.receiver.fd);
      if (got !== undefined) assert.equal(got, "first");
      return got !== undefined;
    });
    assert.equal(pendingDatagram(next.receiver.fd), undefined, "nothing went to the new peer");
    ring.closing(reused);
    nativeSockets.close(reused);
  } finally {
    ring.close();
    for (const fd of [old.receiver.fd, next.receiver.fd, next.sender.fd]) nativeSockets.close(fd);
  }
});
