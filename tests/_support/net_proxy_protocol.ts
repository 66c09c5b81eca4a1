/**
 * PROXY protocol test peers: a TCP target that records every byte it receives, a UDP target that
 * parses the version 2 header of each datagram (its own parser, written from the specification, not
 * the one under test) and answers with the address it read, and a capture of access records.
 * @module
 */

import { configure, type LogRecord, reset } from "@logtape/logtape";
import { readAll, startTcpServer, type TcpTestServer } from "./net_tcp.ts";

/** A TCP server that keeps everything each connection sent (until its EOF), then closes it. */
export interface RecordingTcpServer extends TcpTestServer {
  /** Bytes of each finished connection, in order of their EOF. */
  readonly received: readonly Uint8Array[];
}

/** Starts a {@linkcode RecordingTcpServer} on `hostname` (default 127.0.0.1). */
export function startRecordingTcpServer(options: { hostname?: string } = {}): RecordingTcpServer {
  const received: Uint8Array[] = [];
  const server = startTcpServer(async (conn) => {
    received.push(await readAll(conn));
  }, options);
  return Object.assign(server, { received });
}

/** What a version 2 header said, as read by {@linkcode parseV2Independently}. */
export interface ParsedV2 {
  /** 0x11 TCP/IPv4, 0x12 UDP/IPv4, 0x21 TCP/IPv6, 0x22 UDP/IPv6. */
  readonly familyTransport: number;
  readonly sourceAddress: string;
  readonly sourcePort: number;
  readonly destinationAddress: string;
  readonly destinationPort: number;
  /** Header bytes; the payload follows. */
  readonly length: number;
}

const SIGNATURE = [0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a];

/**
 * Parses a version 2 PROXY command header with INET or INET6 addresses straight from the
 * specification (section 2.2); IPv6 addresses come out as 8 full hex groups.
 * @throws {Error} naming what is wrong.
 */
export function parseV2Independently(bytes: Uint8Array): ParsedV2 {
  if (bytes.length < 16 || SIGNATURE.some((b, i) => bytes[i] !== b)) {
    throw new Error("no v2 signature");
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (view.getUint8(12) !== 0x21) throw new Error(`ver_cmd 0x${view.getUint8(12).toString(16)}`);
  const familyTransport = view.getUint8(13);
  const length = 16 + view.getUint16(14);
  if (bytes.length < length) throw new Error(`header of ${length} bytes, got ${bytes.length}`);
  if (familyTransport >> 4 === 1) {
    const ip = (at: number) => Array.from(bytes.subarray(at, at + 4)).join(".");
    return {
      familyTransport,
      sourceAddress: ip(16),
      destinationAddress: ip(20),
      sourcePort: view.getUint16(24),
      destinationPort: view.getUint16(26),
      length,
    };
  }
  if (familyTransport >> 4 === 2) {
    const ip = (at: number) =>
      Array.from({ length: 8 }, (_, i) => view.getUint16(at + 2 * i).toString(16)).join(":");
    return {
      familyTransport,
      sourceAddress: ip(16),
      destinationAddress: ip(32),
      sourcePort: view.getUint16(48),
      destinationPort: view.getUint16(50),
      length,
    };
  }
  throw new Error(`family 0x${familyTransport.toString(16)}`);
}

/** A UDP target behind a PROXY v2 sender. */
export interface ProxyV2UdpTarget extends AsyncDisposable {
  readonly port: number;
  /** Datagrams received (with or without a valid header). */
  readonly received: number;
  close(): Promise<void>;
}

/**
 * Starts a UDP target on `hostname` that answers each datagram with
 * `"<source address> <source port> <payload bytes> <payload sha-256 hex>"`, or `"bad: <why>"`.
 */
export function startProxyV2UdpTarget(hostname = "127.0.0.1"): ProxyV2UdpTarget {
  const socket = Deno.listenDatagram({ transport: "udp", hostname, port: 0 });
  let received = 0;
  const loop = (async () => {
    const buffer = new Uint8Array(65_536);
    for (;;) {
      let data: Uint8Array;
      let from: Deno.Addr;
      try {
        [data, from] = await socket.receive(buffer);
      } catch {
        return;
      }
      received++;
      let answer: string;
      try {
        const header = parseV2Independently(data);
        const payload = data.subarray(header.length);
        answer = `${header.sourceAddress} ${header.sourcePort} ${payload.length} ${await sha256(
          payload,
        )}`;
      } catch (error) {
        answer = `bad: ${error instanceof Error ? error.message : error}`;
      }
      await socket.send(new TextEncoder().encode(answer), from).catch(() => {});
    }
  })();
  const close = async () => {
    socket.close();
    await loop;
  };
  return {
    port: (socket.addr as Deno.NetAddr).port,
    get received() {
      return received;
    },
    close,
    [Symbol.asyncDispose]: close,
  };
}

/** Hex SHA-256 of `bytes`. */
export async function sha256(bytes: Uint8Array): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes.slice()));
  return Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** Access records written while it is active (logtape is configured for them alone). */
export interface AccessRecordCapture extends AsyncDisposable {
  /** The properties of each record, in order. */
  readonly records: Record<string, unknown>[];
}

/** Captures the records of logger `undying-proxy.access` until disposed (then logtape is reset). */
export async function captureAccessRecords(): Promise<AccessRecordCapture> {
  const records: Record<string, unknown>[] = [];
  await configure({
    reset: true,
    sinks: { capture: (record: LogRecord) => records.push({ ...record.properties }) },
    loggers: [
      { category: ["undying-proxy", "access"], lowestLevel: "info", sinks: ["capture"] },
      { category: ["logtape", "meta"], lowestLevel: "warning", sinks: [] },
    ],
  });
  return { records, [Symbol.asyncDispose]: () => reset() };
}
