/**
 * PROXY protocol against real implementations: nginx (stream, `listen ... proxy_protocol`) and
 * HAProxy (`accept-proxy`) read the headers our TCP forwarder sends, v1 and v2, over IPv4 and IPv6;
 * HAProxy (`send-proxy`, `send-proxy-v2`) and nginx (`proxy_protocol on`) send the headers our
 * forwarder accepts. The packages are installed with apt when missing (as the benchmark does).
 * @module
 */

import assert from "node:assert/strict";
import { captureAccessRecords } from "./_support/net_proxy_protocol.ts";
import { freePort } from "./_support/net_ports.ts";
import { echoThrough, patternBytes, readAll, startTcpEcho } from "./_support/net_tcp.ts";
import { waitUntil } from "./_support/wait.ts";
import { waitTcp } from "./bench/peers.ts";
import { ProcessGroup } from "./bench/processes.ts";
import { installPackages } from "./bench/toolchain.ts";
import { newTcpCounters } from "../lib/forward/state.ts";
import { TcpForwarder } from "../lib/forward/tcp_forwarder.ts";
import type { ProxyProtocolVersion } from "../lib/spec.ts";

const NGINX = "/usr/sbin/nginx";
const NGINX_STREAM = "/usr/lib/nginx/modules/ngx_stream_module.so";
const HAPROXY = "/usr/sbin/haproxy";
const decoder = new TextDecoder();

await installPackages(
  (line) => Deno.stderr.writeSync(new TextEncoder().encode(`proxy_protocol_peers_test: ${line}\n`)),
  ["nginx", "libnginx-mod-stream", "haproxy"],
);

/** Our TCP forwarder on `hostname` to `targetHost:targetPort`. */
function ourForwarder(
  hostname: string,
  targetPort: number,
  options: { proxyProtocol?: ProxyProtocolVersion; acceptProxyProtocol?: boolean } = {},
) {
  const counters = newTcpCounters();
  const forwarder = new TcpForwarder(Deno.listen({ hostname, port: 0 }), {
    name: "peers/test",
    counters,
    spec: { listenPort: 0, targetHost: hostname, targetPort, ...options },
    dialTimeoutMs: 5000,
    idleTimeoutMs: 0,
    accessLog: true,
  });
  return { forwarder, counters, [Symbol.asyncDispose]: () => forwarder.drain(0) };
}

/** Lines of `path`, or none while it does not exist. */
async function lines(path: string): Promise<string[]> {
  const text = await Deno.readTextFile(path).catch(() => "");
  return text.split("\n").filter((line) => line !== "");
}

Deno.test("nginx stream reads our v1 and v2 headers over IPv4 and IPv6; bytes after them are exact", async () => {
  await using echo = startTcpEcho();
  const dir = await Deno.makeTempDir({ prefix: "undying-pp-nginx-" });
  const addressPort = freePort("tcp");
  const proxyPort = freePort("tcp");
  await Deno.writeTextFile(
    `${dir}/nginx.conf`,
    `load_module ${NGINX_STREAM};
user root;
daemon off;
worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 64; }
stream {
    log_format pp '$proxy_protocol_addr $proxy_protocol_port $bytes_received';
    server {
        listen 127.0.0.1:${addressPort} proxy_protocol;
        listen [::1]:${addressPort} proxy_protocol;
        return "$proxy_protocol_addr $proxy_protocol_port\\n";
    }
    server {
        listen 127.0.0.1:${proxyPort} proxy_protocol;
        listen [::1]:${proxyPort} proxy_protocol;
        proxy_pass 127.0.0.1:${echo.port};
        proxy_half_close on;
        access_log ${dir}/access.log pp;
    }
}
`,
  );
  const group = new ProcessGroup();
  try {
    const nginx = group.spawn("nginx", NGINX, [
      "-p",
      dir,
      "-e",
      `${dir}/error.log`,
      "-c",
      `${dir}/nginx.conf`,
    ]);
    await Promise.race([
      waitTcp(proxyPort, "nginx"),
      nginx.status.then(() => Promise.reject(new Error(`nginx exited: ${nginx.stderrTail}`))),
    ]);
    const expected: string[] = [];
    for (const version of ["v1", "v2"] as const) {
      for (const hostname of ["127.0.0.1", "::1"]) {
        await using address = ourForwarder(hostname, addressPort, { proxyProtocol: version });
        const conn = await Deno.connect({ hostname, port: address.forwarder.port });
        const answer = decoder.decode(await readAll(conn));
        conn.close();
        assert.equal(answer, `${hostname} ${conn.localAddr.port}\n`, `${version} ${hostname}`);

        await using proxied = ourForwarder(hostname, proxyPort, { proxyProtocol: version });
        const payload = patternBytes(200_000, version === "v1" ? 1 : 2);
        const client = await Deno.connect({ hostname, port: proxied.forwarder.port });
        const back = await echoThrough(client, payload);
        client.close();
        assert.deepEqual(back, payload, `${version} ${hostname}: byte-exact through nginx`);
        expected.push(`${hostname} ${client.localAddr.port} ${payload.length}`);
      }
    }
    // nginx logs a stream session when it ends (the readiness probe's broken header included).
    const logged = async () => (await lines(`${dir}/access.log`)).filter((l) => !l.startsWith("-"));
    await waitUntil("nginx access log", async () => (await logged()).length >= 4);
    assert.deepEqual(await logged(), expected);
  } finally {
    await group.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("HAProxy accept-proxy reads our headers; HAProxy send-proxy(-v2) and nginx proxy_protocol reach our acceptor", async () => {
  await using capture = await captureAccessRecords();
  await using echo = startTcpEcho();
  // Ours, accepting PROXY headers, in front of the echo target.
  await using acceptor = ourForwarder("127.0.0.1", echo.port, { acceptProxyProtocol: true });
  const dir = await Deno.makeTempDir({ prefix: "undying-pp-haproxy-" });
  const acceptPort = freePort("tcp");
  const sendV1Port = freePort("tcp");
  const sendV2Port = freePort("tcp");
  const nginxSendPort = freePort("tcp");
  await Deno.writeTextFile(
    `${dir}/haproxy.cfg`,
    `global
    maxconn 100
    log stdout format raw local0

defaults
    mode tcp
    log global
    timeout connect 5s
    timeout client 30s
    timeout server 30s

frontend accept
    bind 127.0.0.1:${acceptPort} accept-proxy
    bind [::1]:${acceptPort} accept-proxy
    log-format "client %ci %cp uploaded %U"
    default_backend echo

backend echo
    server echo 127.0.0.1:${echo.port}

listen send_v1
    bind 127.0.0.1:${sendV1Port}
    server us 127.0.0.1:${acceptor.forwarder.port} send-proxy

listen send_v2
    bind 127.0.0.1:${sendV2Port}
    server us 127.0.0.1:${acceptor.forwarder.port} send-proxy-v2
`,
  );
  await Deno.writeTextFile(
    `${dir}/nginx.conf`,
    `load_module ${NGINX_STREAM};
daemon off;
worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 64; }
stream {
    server {
        listen 127.0.0.1:${nginxSendPort};
        proxy_pass 127.0.0.1:${acceptor.forwarder.port};
        proxy_protocol on;
        proxy_half_close on;
    }
}
`,
  );
  const group = new ProcessGroup();
  try {
    const haproxy = group.spawn("haproxy", HAPROXY, ["-db", "-f", `${dir}/haproxy.cfg`], {
      stdout: true,
    });
    const nginx = group.spawn("nginx", NGINX, [
      "-p",
      dir,
      "-e",
      `${dir}/error.log`,
      "-c",
      `${dir}/nginx.conf`,
    ]);
    for (const [process, port] of [[haproxy, sendV2Port], [nginx, nginxSendPort]] as const) {
      await Promise.race([
        waitTcp(port, process.name),
        process.status.then(() =>
          Promise.reject(new Error(`${process.name} exited: ${process.stderrTail}`))
        ),
      ]);
    }
    const readyRecords = capture.records.length; // the readiness probes' refused connections

    // Ours → HAProxy accept-proxy (→ echo), v1 and v2, IPv4 and IPv6.
    for (const version of ["v1", "v2"] as const) {
      for (const hostname of ["127.0.0.1", "::1"]) {
        await using sender = ourForwarder(hostname, acceptPort, { proxyProtocol: version });
        const payload = patternBytes(100_000, 5);
        const client = await Deno.connect({ hostname, port: sender.forwarder.port });
        assert.deepEqual(await echoThrough(client, payload), payload, `${version} ${hostname}`);
        client.close();
        let line = await haproxy.readLine(5000);
        while (!line.startsWith("client ")) line = await haproxy.readLine(5000);
        assert.equal(
          line,
          `client ${hostname} ${client.localAddr.port} uploaded ${payload.length}`,
          `${version} ${hostname}: HAProxy's client is our client`,
        );
      }
    }

    // HAProxy send-proxy / send-proxy-v2 and nginx proxy_protocol → ours (→ echo).
    for (const port of [sendV1Port, sendV2Port, nginxSendPort]) {
      const payload = patternBytes(50_000, port);
      const client = await Deno.connect({ hostname: "127.0.0.1", port });
      assert.deepEqual(await echoThrough(client, payload), payload);
      client.close();
      await waitUntil(`record ${port}`, () => capture.records.length > readyRecords);
      const record = capture.records.pop()!;
      assert.equal(record.endReason, "client_closed");
      assert.equal(record.clientAddress, "127.0.0.1");
      assert.equal(record.clientPort, client.localAddr.port, `port ${port}: the carried client`);
      assert.notEqual(record.peerPort, client.localAddr.port, "the peer is the sender");
      assert.equal(record.bytesClientToTarget, payload.length);
    }
    const { ProxyHeaderMalformed } = acceptor.counters.errors;
    assert.equal(ProxyHeaderMalformed, 0);
  } finally {
    await group.close();
    await Deno.remove(dir, { recursive: true });
  }
});
