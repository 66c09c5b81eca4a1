import assert from "node:assert/strict";
import { openFdCount } from "../../tests/_support/net_fd.ts";
import { freePort } from "../../tests/_support/net_ports.ts";
import {
  readAll,
  readExactly,
  startTcpEcho,
  startTcpServer,
  writeAll,
} from "../../tests/_support/net_tcp.ts";
import { cpuDuring, sparseUdpTraffic } from "../../tests/_support/cpu_use.ts";
import { startUdpEcho, udpClient } from "../../tests/_support/net_udp.ts";
import { waitUntil } from "../../tests/_support/wait.ts";
import { TCP_ENGINES } from "../../tests/_support/tcp_engines.ts";
import { captureAccessRecords } from "../../tests/_support/net_proxy_protocol.ts";
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

function tcp(name: string, listenPort: number, targetPort: number): ForwarderSpec {
  return { name, tcp: { listenPort, targetPort, targetHost: "127.0.0.1" } };
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
): Promise<ListenerState> {
  return waitUntil(
    `${name} ${protocol} ${phase} (now ${JSON.stringify(stateOf(sup, name, protocol))})`,
    () => stateOf(sup, name, protocol)?.phase === phase && stateOf(sup, name, protocol),
  );
}

/** Applies one forwarder with TCP and UDP parts on free ports and waits until both listen. */
async function applyBoth(
  sup: Supervisor,
  name: string,
  targets: { readonly tcp: number; readonly udp: number },
): Promise<{ tcpPort: number; udpPort: number; spec: ForwarderSpec }> {
  const [tcpPort, udpPort] = [freePort("tcp"), freePort("udp")];
  const spec: ForwarderSpec = {
    name,
    tcp: { listenPort: tcpPort, targetPort: targets.tcp, targetHost: "127.0.0.1" },
    udp: udpSpec(udpPort, targets.udp),
  };
  sup.apply([spec]);
  await waitForPhase(sup, name, "tcp", "listening");
  await waitForPhase(sup, name, "udp", "listening");
  return { tcpPort, udpPort, spec };
}

async function tcpEchoes(port: number, text: string): Promise<boolean> {
  using conn = await Deno.connect({ hostname: "127.0.0.1", port });
  await writeAll(conn, encoder.encode(text));
  return decoder.decode(await readExactly(conn, text.length)) === text;
}

/** A server that sends `text` to every client and closes. */
function greeter(text: string) {
  return startTcpServer((conn) => writeAll(conn, encoder.encode(text)));
}

async function greeting(port: number): Promise<string> {
  using conn = await Deno.connect({ hostname: "127.0.0.1", port });
  return decoder.decode(await readAll(conn));
}

for (const tcpEngine of TCP_ENGINES) {
  Deno.test(`Supervisor retargets live: new connections go to the new target, old ones stay (${tcpEngine} TCP engine)`, async () => {
    await using echo = startTcpEcho();
    await using other = greeter("other");
    await using sup = supervisor({ tcpEngine });
    const port = freePort("tcp");
    sup.apply([tcp("a", port, echo.port)]);
    await waitForPhase(sup, "a", "tcp", "listening");
    using live = await Deno.connect({ hostname: "127.0.0.1", port });
    assert.ok(await tcpEchoes(port, "before"));
    await writeAll(live, encoder.encode("1"));
    await readExactly(live, 1);
    const events: string[] = [];
    sup.onChange((name) => events.push(name));
    sup.apply([tcp("a", port, other.port)]);
    assert.equal(await greeting(port), "other");
    await writeAll(live, encoder.encode("still here"));
    assert.equal(decoder.decode(await readExactly(live, 10)), "still here");
    assert.deepEqual(events, [], "a retarget does not change the status");
  });

  Deno.test(`Supervisor rebinds on a listenPort change and frees the old port (${tcpEngine} TCP engine)`, async () => {
    await using echo = startTcpEcho();
    await using sup = supervisor({ tcpEngine });
    const [oldPort, newPort] = [freePort("tcp"), freePort("tcp")];
    sup.apply([tcp("a", oldPort, echo.port)]);
    await waitForPhase(sup, "a", "tcp", "listening");
    sup.apply([tcp("a", newPort, echo.port)]);
    await waitUntil("listening on the new port", () => {
      const state = stateOf(sup, "a", "tcp");
      return state?.phase === "listening" && state.port === newPort;
    });
    assert.ok(await tcpEchoes(newPort, "moved"));
    await waitUntil("the old port refusing connections", async () => {
      try {
        (await Deno.connect({ hostname: "127.0.0.1", port: oldPort })).close();
        return false;
      } catch (error) {
        return error instanceof Deno.errors.ConnectionRefused;
      }
    });
  });

  Deno.test(`Supervisor: desired-set order decides a port, also against a holder, which drains and waits (${tcpEngine} TCP engine)`, async () => {
    await using first = greeter("first");
    await using second = greeter("second");
    await using sup = supervisor({ tcpEngine });
    const port = freePort("tcp");
    sup.apply([tcp("a", port, first.port)]);
    await waitForPhase(sup, "a", "tcp", "listening"); // the splice engine binds in its threads
    assert.equal(await greeting(port), "first");
    // "b" comes first in the new desired set: "a" gives the port up and waits for it.
    sup.apply([tcp("b", port, second.port), tcp("a", port, first.port)]);
    assert.deepEqual(stateOf(sup, "a", "tcp"), { phase: "conflict", holder: "b", port });
    await waitForPhase(sup, "b", "tcp", "listening");
    assert.equal(await greeting(port), "second");
    assert.deepEqual(stateOf(sup, "a", "tcp"), { phase: "conflict", holder: "b", port });
    // A fresh supervisor given the same desired set ends up the same way.
    await using fresh = supervisor({ tcpEngine });
    const freshPort = freePort("tcp");
    fresh.apply([tcp("b", freshPort, second.port), tcp("a", freshPort, first.port)]);
    assert.deepEqual(stateOf(fresh, "a", "tcp"), {
      phase: "conflict",
      holder: "b",
      port: freshPort,
    });
    await waitForPhase(fresh, "b", "tcp", "listening");
    assert.equal(await greeting(freshPort), "second");
    // Once "b" lets go, "a" takes the port over.
    sup.apply([tcp("a", port, first.port)]);
    await waitForPhase(sup, "a", "tcp", "listening");
    assert.equal(await greeting(port), "first");
  });

  Deno.test(`Supervisor: among newcomers, desired-set order decides who gets a port (${tcpEngine} TCP engine)`, async () => {
    await using echo = startTcpEcho();
    await using sup = supervisor({ tcpEngine });
    const port = freePort("tcp");
    sup.apply([tcp("z", port, echo.port), tcp("a", port, echo.port)]);
    assert.deepEqual(stateOf(sup, "a", "tcp"), { phase: "conflict", holder: "z", port });
    await waitForPhase(sup, "z", "tcp", "listening");
  });

  Deno.test(`Supervisor removes a forwarder that left the desired set and reports it (${tcpEngine} TCP engine)`, async () => {
    await using echo = startTcpEcho();
    await using sup = supervisor({ tcpEngine });
    const port = freePort("tcp");
    sup.apply([tcp("a", port, echo.port)]);
    await waitForPhase(sup, "a", "tcp", "listening");
    const events: string[] = [];
    sup.onChange((name) => events.push(name));
    sup.apply([]);
    assert.deepEqual(events, ["a"]);
    assert.deepEqual(sup.statuses(), []);
    assert.deepEqual([...sup.counters()], []);
  });
}

// The portable TCP engine binds on this thread; the splice engine answers from its threads.
Deno.test("Supervisor.apply() binds before it returns: statuses() already says listening or failed (portable TCP engine)", async () => {
  await using echo = startTcpEcho();
  await using sup = supervisor();
  using squatter = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = freePort("tcp");
  sup.apply([tcp("free", port, echo.port), tcp("busy", squatter.addr.port, echo.port)]);
  assert.deepEqual(stateOf(sup, "free", "tcp"), { phase: "listening", port });
  assert.equal(stateOf(sup, "busy", "tcp")?.phase, "failed");
});

Deno.test("Supervisor rejects bad options and duplicate names", async () => {
  assert.throws(() => new Supervisor({ dialTimeoutMs: 0 }), RangeError);
  await using sup = supervisor();
  assert.throws(() => sup.apply([{ name: "a" }, { name: "a" }]), TypeError);
});

// Tests with UDP parts run on both UDP engines.
// The portable engines together, and the native (FFI) engines together.
for (
  const [udpEngine, tcpEngine] of [["portable", "portable"], ["batched", "splice"]] as const
) {
  Deno.test(`Supervisor moves a UDP listen port and retargets live; other ports keep their sessions (${udpEngine} UDP, ${tcpEngine} TCP engine)`, async () => {
    await using first = startUdpEcho();
    await using second = startUdpEcho();
    await using sup = supervisor({ udpEngine, tcpEngine });
    const [oldPort, newPort, otherPort] = [freePort("udp"), freePort("udp"), freePort("udp")];
    sup.apply([
      { name: "a", udp: udpSpec(oldPort, first.port) },
      { name: "other", udp: udpSpec(otherPort, first.port) },
    ]);
    await waitForPhase(sup, "a", "udp", "listening");
    await waitForPhase(sup, "other", "udp", "listening");
    using client = udpClient();
    assert.equal(decoder.decode(await client.request(encoder.encode("1"), otherPort)), "1");
    const otherSessions = first.sourcePorts.length;
    sup.apply([
      { name: "a", udp: udpSpec(newPort, second.port) },
      { name: "other", udp: udpSpec(otherPort, first.port) },
    ]);
    await waitUntil("listening on the new port", () => {
      const state = stateOf(sup, "a", "udp");
      return state?.phase === "listening" && state.port === newPort;
    });
    assert.equal(decoder.decode(await client.request(encoder.encode("2"), newPort)), "2");
    assert.equal(second.received, 1, "the moved listener forwards to its new target");
    await waitUntil("the old port free again", () => {
      try {
        Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: oldPort }).close();
        return true;
      } catch {
        return false;
      }
    });
    assert.equal(decoder.decode(await client.request(encoder.encode("3"), otherPort)), "3");
    assert.equal(first.sourcePorts.length, otherSessions, "the other port's session survived");
  });

  Deno.test(`Supervisor starts TCP and UDP listeners and reports them listening (${udpEngine} UDP, ${tcpEngine} TCP engine)`, async () => {
    await using echo = startTcpEcho();
    await using udpEcho = startUdpEcho();
    await using sup = supervisor({ udpEngine, tcpEngine });
    const changes: string[] = [];
    sup.onChange((name) => changes.push(name));
    const { tcpPort, udpPort } = await applyBoth(sup, "ns/a", {
      tcp: echo.port,
      udp: udpEcho.port,
    });
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

  Deno.test(`Supervisor.close() closes every socket (descriptor count back to baseline) (${udpEngine} UDP, ${tcpEngine} TCP engine)`, async () => {
    await using echo = startTcpEcho();
    await using udpEcho = startUdpEcho();
    const baseline = await openFdCount();
    const sup = supervisor({ udpEngine, tcpEngine });
    const { tcpPort, udpPort } = await applyBoth(sup, "a", { tcp: echo.port, udp: udpEcho.port });
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
    // At most the baseline: a descriptor of an earlier test file may close meanwhile.
    await waitUntil("fd count at baseline", async () => (await openFdCount()) <= baseline);
    assert.deepEqual(sup.statuses(), []);
    assert.throws(() => sup.apply([]), /closed/);
  });

  Deno.test(`Supervisor: a port in use fails only its part, counted, retried with capped backoff (${udpEngine} UDP, ${tcpEngine} TCP engine)`, async () => {
    await using echo = startTcpEcho();
    await using udpEcho = startUdpEcho();
    await using sup = supervisor({ udpEngine, tcpEngine }); // retries after 50 ms, doubling up to 200 ms (±20% jitter)
    const tcpSquatter = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const udpSquatter = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
    const busy: ForwarderSpec = {
      name: "busy",
      tcp: { listenPort: tcpSquatter.addr.port, targetPort: echo.port, targetHost: "127.0.0.1" },
      udp: udpSpec((udpSquatter.addr as Deno.NetAddr).port, udpEcho.port),
    };
    const goodPort = freePort("tcp");
    const retries: number[] = [];
    let seen: ListenerState | undefined;
    sup.onChange(() => {
      const state = stateOf(sup, "busy", "tcp");
      if (state !== seen && state?.phase === "failed") retries.push(state.retryInMs);
      seen = state;
    });
    sup.apply([busy, tcp("good", goodPort, echo.port)]);
    await waitForPhase(sup, "good", "tcp", "listening");
    assert.ok(await tcpEchoes(goodPort, "unaffected"));
    await waitUntil("four failed binds", () => retries.length >= 4);
    const [first, second, third, ...capped] = retries as [number, number, number, number];
    assert.ok(first >= 40 && first <= 60, `first retry ${first}`);
    assert.ok(second >= 80 && second <= 120, `second retry ${second}`);
    assert.ok(capped.concat(third).every((ms) => ms >= 160 && ms <= 200), `capped ${retries}`);
    for (const protocol of ["tcp", "udp"] as const) {
      const failed = stateOf(sup, "busy", protocol);
      assert.ok(
        failed?.phase === "failed" && /in use/i.test(failed.reason),
        JSON.stringify(failed),
      );
      const counters = [...sup.counters()].find((c) => c.name === "busy")?.[protocol];
      assert.ok(counters !== undefined && counters.errors.Listen >= 1, protocol);
    }
    tcpSquatter.close();
    udpSquatter.close();
    await waitForPhase(sup, "busy", "tcp", "listening");
    await waitForPhase(sup, "busy", "udp", "listening");
    assert.ok(await tcpEchoes(busy.tcp!.listenPort, "recovered"));
    using client = udpClient();
    const reply = await client.request(encoder.encode("recovered"), busy.udp!.listenPort);
    assert.equal(decoder.decode(reply), "recovered");
  });

  Deno.test(`Supervisor stops only the removed part and never touches unchanged forwarders (${udpEngine} UDP, ${tcpEngine} TCP engine)`, async () => {
    await using echo = startTcpEcho();
    await using udpEcho = startUdpEcho();
    await using sup = supervisor({ udpEngine, tcpEngine });
    const [tcpPort, udpPort, otherPort] = [freePort("tcp"), freePort("udp"), freePort("tcp")];
    const both: ForwarderSpec = {
      name: "both",
      tcp: { listenPort: tcpPort, targetPort: echo.port, targetHost: "127.0.0.1" },
      udp: udpSpec(udpPort, udpEcho.port),
    };
    sup.apply([both, tcp("other", otherPort, echo.port)]);
    await waitForPhase(sup, "both", "udp", "listening");
    await waitForPhase(sup, "other", "tcp", "listening");
    using client = udpClient();
    assert.equal(decoder.decode(await client.request(encoder.encode("1"), udpPort)), "1");
    using otherLive = await Deno.connect({ hostname: "127.0.0.1", port: otherPort });
    await writeAll(otherLive, encoder.encode("o"));
    await readExactly(otherLive, 1);

    sup.apply([{ name: "both", udp: both.udp! }, tcp("other", otherPort, echo.port)]);
    assert.deepEqual(sup.statuses().map((status) => Object.keys(status)), [
      ["name", "udp"],
      ["name", "tcp"],
    ]);
    assert.equal([...sup.counters()][0]?.tcp, undefined);
    await waitUntil("the removed TCP part to stop listening", async () => {
      try {
        (await Deno.connect({ hostname: "127.0.0.1", port: tcpPort })).close();
        return false;
      } catch {
        return true;
      }
    });
    assert.equal(decoder.decode(await client.request(encoder.encode("2"), udpPort)), "2");
    assert.deepEqual(udpEcho.sourcePorts.length, 1, "the UDP session survived");
    await writeAll(otherLive, encoder.encode("still"));
    assert.equal(decoder.decode(await readExactly(otherLive, 5)), "still");
  });

  Deno.test(`Supervisor listens dual-stack by default: IPv4 and IPv6 clients (${udpEngine} UDP, ${tcpEngine} TCP engine)`, async () => {
    await using echo = startTcpEcho();
    await using udpEcho = startUdpEcho();
    await using sup = new Supervisor({ drainGraceMs: 100, udpEngine, tcpEngine }); // no listenAddress
    const { tcpPort, udpPort } = await applyBoth(sup, "dual", {
      tcp: echo.port,
      udp: udpEcho.port,
    });
    for (const hostname of ["127.0.0.1", "::1"]) {
      using conn = await Deno.connect({ hostname, port: tcpPort });
      await writeAll(conn, encoder.encode(hostname));
      assert.equal(decoder.decode(await readExactly(conn, hostname.length)), hostname);
      using client = udpClient(hostname);
      const reply = await client.request(encoder.encode(hostname), udpPort);
      assert.equal(decoder.decode(reply), hostname);
    }
  });

  Deno.test(`Supervisor binds only the configured listen address (${udpEngine} UDP, ${tcpEngine} TCP engine)`, async () => {
    await using echo = startTcpEcho();
    await using udpEcho = startUdpEcho();
    await using sup = supervisor({ udpEngine, tcpEngine, listenAddress: "127.0.0.2" });
    const [tcpPort, udpPort] = [freePort("tcp", "127.0.0.2"), freePort("udp", "127.0.0.2")];
    sup.apply([{
      name: "a",
      tcp: { listenPort: tcpPort, targetPort: echo.port, targetHost: "127.0.0.1" },
      udp: udpSpec(udpPort, udpEcho.port),
    }]);
    await waitForPhase(sup, "a", "tcp", "listening");
    await waitForPhase(sup, "a", "udp", "listening");
    {
      using conn = await Deno.connect({ hostname: "127.0.0.2", port: tcpPort });
      await writeAll(conn, encoder.encode("two"));
      assert.equal(decoder.decode(await readExactly(conn, 3)), "two");
    }
    await assert.rejects(
      Deno.connect({ hostname: "127.0.0.1", port: tcpPort }),
      Deno.errors.ConnectionRefused,
    );
    using client = udpClient();
    const socket = client.socket;
    await socket.send(encoder.encode("two"), {
      transport: "udp",
      hostname: "127.0.0.2",
      port: udpPort,
    });
    const [reply, from] = await socket.receive(new Uint8Array(16));
    assert.equal(decoder.decode(reply), "two");
    assert.deepEqual({ ...from }, { transport: "udp", hostname: "127.0.0.2", port: udpPort });
  });

  Deno.test(`Supervisor counts a listen address that does not resolve (${udpEngine} UDP, ${tcpEngine} TCP engine)`, async () => {
    // glibc refuses "-" as a host name without sending a query: no DNS traffic leaves the machine.
    await using sup = supervisor({ udpEngine, tcpEngine, listenAddress: "-" });
    sup.apply([{
      name: "a",
      tcp: { listenPort: 1, targetPort: 1, targetHost: "h" },
      udp: udpSpec(1, 1),
    }]);
    await waitForPhase(sup, "a", "tcp", "failed");
    await waitForPhase(sup, "a", "udp", "failed");
    const [counters] = [...sup.counters()];
    assert.ok((counters?.udp?.errors.ResolveListenAddress ?? 0) >= 1, "one per attempt");
    assert.equal(counters?.udp?.errors.Listen, 0);
    assert.ok((counters?.tcp?.errors.Listen ?? 0) >= 1, "TCP has one type for every bind failure");
    const failed = stateOf(sup, "a", "udp");
    assert.ok(failed?.phase === "failed" && /lookup/.test(failed.reason), JSON.stringify(failed));
  });

  Deno.test(`Supervisor closes every socket of a forwarder removed from the desired set (${udpEngine} UDP, ${tcpEngine} TCP engine)`, async () => {
    await using echo = startTcpEcho();
    await using udpEcho = startUdpEcho();
    await using sup = supervisor({ udpEngine, tcpEngine });
    // Engine threads hold an epoll descriptor (and a reserved pipe) for their lifetime.
    await sup.udpEngine();
    await sup.tcpEngine();
    const baseline = await openFdCount();
    const { tcpPort, udpPort } = await applyBoth(sup, "gone", {
      tcp: echo.port,
      udp: udpEcho.port,
    });
    {
      using client = udpClient();
      await client.request(encoder.encode("x"), udpPort);
      assert.ok(await tcpEchoes(tcpPort, "y"));
    }
    sup.apply([]);
    // At most the baseline: a descriptor of an earlier test file may close meanwhile.
    await waitUntil("fd count at baseline", async () => (await openFdCount()) <= baseline);
  });
}

Deno.test("Supervisor: access records of connections cut by a spec change say replaced, removed or drained", async () => {
  await using capture = await captureAccessRecords();
  await using echo = startTcpEcho();
  await using udpEcho = startUdpEcho();
  const sup = supervisor({ drainGraceMs: 0, accessLog: true });
  const [first, second, third] = [freePort("tcp"), freePort("tcp"), freePort("tcp")];
  const openConnection = async (port: number) => {
    let conn: Deno.TcpConn | undefined;
    await waitUntil(`port ${port}`, async () => {
      conn = await Deno.connect({ hostname: "127.0.0.1", port }).catch(() => undefined);
      return conn !== undefined;
    });
    await writeAll(conn!, encoder.encode("x"));
    await readExactly(conn!, 1);
    return conn!;
  };
  try {
    sup.apply([tcp("ns/moved", first, echo.port), tcp("ns/gone", third, echo.port)]);
    const moved = await openConnection(first);
    const gone = await openConnection(third);
    sup.apply([tcp("ns/moved", second, echo.port), tcp("ns/gone", third, echo.port)]);
    await waitUntil("the moved connection's record", () => capture.records.length === 1);
    sup.apply([tcp("ns/moved", second, echo.port)]);
    await waitUntil("the removed one's record", () => capture.records.length === 2);
    const last = await openConnection(second);
    using client = udpClient();
    sup.apply([{ ...tcp("ns/moved", second, echo.port), udp: udpSpec(first, udpEcho.port) }]);
    await waitUntil("UDP forwarding", async () => {
      const reply = await client.request(Uint8Array.of(1), first, 200).catch(() => undefined);
      return reply !== undefined;
    });
    await sup.close({ graceMs: 0 });
    await waitUntil("the records at shutdown", () => capture.records.length === 4);
    for (const conn of [moved, gone, last]) conn.close();
    const ends = capture.records.map((r) => `${r.forwarder} ${r.protocol} ${r.endReason}`);
    assert.deepEqual(ends.slice(0, 2), ["ns/moved tcp replaced", "ns/gone tcp removed"]);
    assert.deepEqual(ends.slice(2).sort(), ["ns/moved tcp drained", "ns/moved udp drained"]);
  } finally {
    await sup.close({ graceMs: 0 });
  }
});

Deno.test("Supervisor.settled() resolves once binds in engine threads are done", async () => {
  await using echo = startTcpEcho();
  await using sup = supervisor({ tcpEngine: "splice" });
  await sup.tcpEngine();
  const port = freePort("tcp");
  sup.apply([tcp("threaded", port, echo.port)]);
  assert.equal(stateOf(sup, "threaded", "tcp")?.phase, "pending", "the engine thread binds");
  await sup.settled();
  assert.deepEqual(stateOf(sup, "threaded", "tcp"), { phase: "listening", port });
});

Deno.test("Supervisor: udpBusyPollUs reaches the batched engine's threads (they poll through 2 ms gaps)", async () => {
  await using udpEcho = startUdpEcho();
  await using sup = supervisor({ udpEngine: "batched", udpBusyPollUs: 10_000 });
  const udpPort = freePort("udp");
  sup.apply([{ name: "ns/game", udp: udpSpec(udpPort, udpEcho.port) }]);
  await waitForPhase(sup, "ns/game", "udp", "listening");
  const traffic = await cpuDuring(() => sparseUdpTraffic(udpPort, 400));
  assert.ok(
    traffic.cpuMs > traffic.wallMs * 0.5,
    `${traffic.cpuMs} ms CPU in ${traffic.wallMs} ms: the threads slept between datagrams`,
  );
});
