/**
 * UDP sockets made through libc, for tests of the FFI engines' building blocks (which take file
 * descriptors, not Deno sockets).
 * @module
 */
import assert from "node:assert/strict";

/** The libc calls the helpers use, for tests that need more of them. */
export const nativeSockets = Deno.dlopen("libc.so.6", {
  socket: { parameters: ["i32", "i32", "i32"], result: "i32" },
  socketpair: { parameters: ["i32", "i32", "i32", "buffer"], result: "i32" },
  bind: { parameters: ["i32", "buffer", "u32"], result: "i32" },
  connect: { parameters: ["i32", "buffer", "u32"], result: "i32" },
  getsockname: { parameters: ["i32", "buffer", "buffer"], result: "i32" },
  recv: { parameters: ["i32", "buffer", "usize", "i32"], result: "isize" },
  close: { parameters: ["i32"], result: "i32" },
}).symbols;

/** A bound UDP socket made through libc. */
export interface NativeUdpSocket {
  readonly fd: number;
  /** Its `sockaddr_in`. */
  readonly name: Uint8Array<ArrayBuffer>;
  readonly port: number;
}

/** A UDP socket on 127.0.0.1 with a kernel-chosen port, and its sockaddr_in. */
export function udpSocket(): NativeUdpSocket {
  const fd = nativeSockets.socket(2, 2, 0);
  const name = new Uint8Array(16);
  name.set([2, 0, 0, 0, 127, 0, 0, 1]);
  assert.equal(nativeSockets.bind(fd, name, 16), 0, "bind 127.0.0.1:0");
  assert.equal(nativeSockets.getsockname(fd, name, new Uint32Array([16])), 0);
  return { fd, name, port: name[2]! * 256 + name[3]! };
}

/** Two UDP sockets on 127.0.0.1, the sender connected to the receiver. */
export function connectedPair(): { receiver: NativeUdpSocket; sender: NativeUdpSocket } {
  const receiver = udpSocket();
  const sender = udpSocket();
  assert.equal(nativeSockets.connect(sender.fd, receiver.name, 16), 0);
  return { receiver, sender };
}

/** The datagram waiting on `fd` as text, or undefined when none is (MSG_DONTWAIT). */
export function pendingDatagram(fd: number): string | undefined {
  const buffer = new Uint8Array(2048);
  const length = Number(nativeSockets.recv(fd, buffer, BigInt(buffer.length), 0x40));
  return length < 0 ? undefined : new TextDecoder().decode(buffer.subarray(0, length));
}
