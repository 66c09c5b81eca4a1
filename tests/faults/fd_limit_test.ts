/**
 * Fault suite, point 1 of issue 12: under a small file descriptor limit, a burst of connections to a
 * refusing target, UDP sessions and config reloads together never take the process down; it sheds
 * what does not fit and keeps forwarding.
 */
import assert from "node:assert/strict";
import { echoThrough, patternBytes, startTcpEcho } from "../_support/net_tcp.ts";
import { startUdpEcho, udpClient } from "../_support/net_udp.ts";
import { AUTO_NATIVE_UDP_ENGINE } from "../_support/io_uring_probe.ts";
import { waitUntil } from "../_support/wait.ts";
import { freePort, startProgram } from "../_support/program.ts";
import { tcpDocument, tempConfigFile, udpDocument } from "./_config.ts";

const LIMIT = 200;

Deno.test(`at nofile=${LIMIT}, connections, sessions and reloads together are shed, not fatal`, async () => {
  await using tcpEcho = startTcpEcho();
  await using udpEcho = startUdpEcho();
  const refusedPort = freePort();
  const healthyPort = freePort();
  const udpPort = freePort();
  const documents = [
    tcpDocument("refused", refusedPort, freePort()), // nothing listens there
    tcpDocument("healthy", healthyPort, tcpEcho.port),
    udpDocument("sessions", udpPort, udpEcho.port),
  ];
  await using config = await tempConfigFile(documents);
  await using program = await startProgram(
    ["--config", config.path, "--drain-grace-period=1s"],
    { wrapper: ["prlimit", `--nofile=${LIMIT}:${LIMIT}`, "--"] },
  );
  await waitUntil("readiness", async () => (await program.probe("/readyz")).status === 200, {
    timeoutMs: 30_000,
  });
  const before = await program.scrape();
  // The default UDP engine (native here) counts its sessions in the same sockets budget.
  assert.equal(
    before.series.get(`undying_proxy_udp_engine{engine="${AUTO_NATIVE_UDP_ENGINE}"}`),
    1,
  );
  assert.equal(before.series.get("process_max_fds"), LIMIT);
  const budget = before.series.get("undying_proxy_max_open_sockets") ?? 0;
  assert.ok(budget > 0 && budget < LIMIT, `budget ${budget}`);

  // 150 connections at once, held open (300 sockets, more than the limit), a burst to the
  // refusing target, UDP clients, and reloads meanwhile.
  const held = await Promise.allSettled(
    Array.from({ length: 150 }, () => Deno.connect({ hostname: "127.0.0.1", port: healthyPort })),
  );
  const refused = await Promise.allSettled(
    Array.from({ length: 50 }, () => Deno.connect({ hostname: "127.0.0.1", port: refusedPort })),
  );
  const clients = Array.from({ length: 30 }, () => udpClient());
  await Promise.all(clients.map((client) => client.send(new Uint8Array(100), udpPort)));
  const addedPort = freePort();
  await config.write([...documents, tcpDocument("added", addedPort, tcpEcho.port)]);
  await program.waitForLog(
    "the reload during the burst",
    (line) => (line["added"] as string[] | undefined)?.includes("default/added") === true,
  );
  const during = await program.scrape();
  const shed = during.series.get(
    'undying_proxy_tcp_forwarder_errors_total{forwarder="healthy",namespace="default",type="SocketLimit"}',
  ) ?? 0;
  assert.ok(shed > 0, "connections beyond the budget were shed and counted");
  assert.ok((during.series.get("process_open_fds") ?? LIMIT) < LIMIT);
  for (const result of [...held, ...refused]) {
    if (result.status === "fulfilled") result.value.close();
  }
  for (const client of clients) client[Symbol.dispose]();
  await waitUntil(
    "the sockets to be given back",
    async () => (await program.scrape()).series.get("undying_proxy_open_sockets") === 0,
  );

  // Still alive, still forwarding.
  using conn = await Deno.connect({ hostname: "127.0.0.1", port: healthyPort });
  assert.deepEqual(await echoThrough(conn, patternBytes(10_000)), patternBytes(10_000));
  using client = udpClient();
  assert.equal((await client.request(new Uint8Array(64), udpPort)).length, 64);
  const after = await program.scrape();
  const fds = after.series.get("process_open_fds") ?? LIMIT;
  assert.ok(fds < LIMIT, `${fds} fds open`);
  program.signal("SIGTERM");
  // The UDP sessions still open after the 1 s grace are closed and logged (exit code 0: UDP).
  assert.equal(await program.exited, 0, program.output().slice(-3000));
  assert.ok(program.logs().some((line) => /Closed \d+ UDP session/.test(line.message)));
});
