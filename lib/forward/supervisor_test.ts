import assert from "node:assert/strict";
import { openFdCount } from "../../tests/_support/net_fd.ts";
import { readExactly, startTcpEcho, writeAll } from "../../tests/_support/net_tcp.ts";
import { startUdpEcho, udpClient } from "../../tests/_support/net_udp.ts";
import { waitFor } from "../../tests/_support/net_wait.ts";
import type { ForwarderSpec, UdpSpec } from "../spec.ts";
import type { ForwarderStatus, ListenerState } from "./state.ts";
import { Supervisor, type SupervisorOptions } from "./supervisor.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** A supervisor on 127.0.0.1 with test-sized timings. */
function supervisor(options: SupervisorOptions = {}): Supervisor {
  return new Supervisor({
    listenAddress: "127.0.0.1",
    drainGraceMs: 100,
    bindRetryInitialMs: 50,
    bindRetryMaxMs: 200,
    ...options,
  });
}

/** A port that is free on 127.0.0.1 for `transport` right now. */
function freePort(transport: "tcp" | "udp"): number {
  if (transport === "tcp") {
    const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    listener.close();
    return listener.addr.port;
  }
  const socket = Deno.listenDatagram({ transport, hostname: "127.0.0.1", port: 0 });
  socket.close();
  return (socket.addr as Deno.NetAddr).port;
}

function udpSpec(listenPort: number, targetPort: number): UdpSpec {
  return {
    listenPort,
    targetPort,
    targetHost: "127.0.0.1",
    readTimeoutSeconds: 30,
    writeTimeoutSeconds: 5,
  };
}

function stateOf(
  sup: Supervisor,
  name: string,
  protocol: "tcp" | "udp",
): ListenerState | undefined {
  return sup.statuses().find((status) => status.name === name)?.[protocol];
}

function waitForPhase(
  sup: Supervisor,
  name: string,
  protocol: "tcp" | "udp",
  phase: ListenerState["phase"],
): Promise<void> {
  return waitFor(() => stateOf(sup, name, protocol)?.phase === phase, {
    message: `${name} ${protocol} ${phase} (now ${JSON.stringify(stateOf(sup, name, protocol))})`,
  });
}

async function tcpEchoes(port: number, text: string): Promise<boolean> {
  using conn = await Deno.connect({ hostname: "127.0.0.1", port });
  await writeAll(conn, encoder.encode(text));
  return decoder.decode(await readExactly(conn, text.length)) === text;
}

Deno.test("Supervisor starts TCP and UDP listeners and reports them listening", async () => {
  await using echo = startTcpEcho();
  await using udpEcho = startUdpEcho();
  await using sup = supervisor();
  const changes: string[] = [];
  sup.onChange((name) => changes.push(name));
  const tcpPort = freePort("tcp");
  const udpPort = freePort("udp");
  sup.apply([{
    name: "ns/a",
    tcp: { listenPort: tcpPort, targetPort: echo.port, targetHost: "127.0.0.1" },
    udp: udpSpec(udpPort, udpEcho.port),
  }]);
  await waitForPhase(sup, "ns/a", "tcp", "listening");
  await waitForPhase(sup, "ns/a", "udp", "listening");
  assert.deepEqual(
    sup.statuses(),
    [{
      name: "ns/a",
      tcp: { phase: "listening", port: tcpPort },
      udp: { phase: "listening", port: udpPort },
    }] satisfies ForwarderStatus[],
  );
  assert.ok(changes.length >= 2 && changes.every((name) => name === "ns/a"));
  assert.ok(await tcpEchoes(tcpPort, "hello"));
  using client = udpClient();
  assert.equal(decoder.decode(await client.request(encoder.encode("dgram"), udpPort)), "dgram");
  const [counters] = [...sup.counters()];
  assert.equal(counters?.name, "ns/a");
  assert.equal(counters?.tcp?.bytesClientToTarget, 5);
  assert.equal(counters?.udp?.bytesClientToTarget, 5);
});

Deno.test("Supervisor.close() closes every socket (descriptor count back to baseline)", async () => {
  await using echo = startTcpEcho();
  await using udpEcho = startUdpEcho();
  const baseline = await openFdCount();
  const sup = supervisor();
  const tcpPort = freePort("tcp");
  const udpPort = freePort("udp");
  sup.apply([{
    name: "a",
    tcp: { listenPort: tcpPort, targetPort: echo.port, targetHost: "127.0.0.1" },
    udp: udpSpec(udpPort, udpEcho.port),
  }]);
  await waitForPhase(sup, "a", "tcp", "listening");
  await waitForPhase(sup, "a", "udp", "listening");
  using live = await Deno.connect({ hostname: "127.0.0.1", port: tcpPort });
  await writeAll(live, encoder.encode("x"));
  await readExactly(live, 1);
  {
    using client = udpClient();
    await client.request(encoder.encode("y"), udpPort);
  }
  assert.ok((await openFdCount()) > baseline);
  await sup.close({ graceMs: 50 });
  live.close();
  await waitFor(async () => (await openFdCount()) === baseline, {
    message: "fd count at baseline",
  });
  assert.deepEqual(sup.statuses(), []);
  assert.throws(() => sup.apply([]), /closed/);
});
