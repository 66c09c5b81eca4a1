/**
 * The access policy in file mode, end to end: the real program with the compile task's
 * permissions, clients from 127.0.0.2/.3/.4, targets by address and by name (`localhost`).
 */
import assert from "node:assert/strict";
import { dump } from "js-yaml";
import { tcpFrom, udpFrom } from "./_support/net_sources.ts";
import { startTcpEcho } from "./_support/net_tcp.ts";
import { startUdpEcho } from "./_support/net_udp.ts";
import { waitUntil, within } from "./_support/wait.ts";
import { freePort, startProgram, waitForSeries } from "./_support/program.ts";

const WAIT_MS = 20_000;

/** Writes `specs` (by object name) as a `--config` file in a temporary directory. */
async function policyConfig(specs: Record<string, unknown>) {
  const dir = await Deno.makeTempDir({ prefix: "policy_program_test_" });
  const path = `${dir}/proxies.yaml`;
  const documents = Object.entries(specs).map(([name, spec]) =>
    dump({ apiVersion: "proxy.sfact.io/v1alpha1", kind: "UnDyingProxy", metadata: { name }, spec })
  );
  await Deno.writeTextFile(path, documents.join("---\n"));
  return { path, [Symbol.asyncDispose]: () => Deno.remove(dir, { recursive: true }) };
}

Deno.test("file mode: sources, limits and a target name resolving to a denied address, with metrics and logs", async () => {
  await using tcpEcho = startTcpEcho({ hostname: "127.0.0.2" });
  await using udpEcho = startUdpEcho({ hostname: "127.0.0.2" });
  const [open, byName, limited] = [freePort(), freePort(), freePort()];
  await using config = await policyConfig({
    open: { tcp: { listenPort: open, targetHost: "127.0.0.2", targetPort: tcpEcho.port } },
    "by-name": { tcp: { listenPort: byName, targetHost: "localhost", targetPort: tcpEcho.port } },
    limited: {
      tcp: {
        listenPort: limited,
        targetHost: "127.0.0.2",
        targetPort: tcpEcho.port,
        sourceRanges: ["127.0.0.3/32"],
        maxConnectionsPerSource: 1,
      },
      udp: {
        listenPort: limited,
        targetHost: "127.0.0.2",
        targetPort: udpEcho.port,
        sourceRanges: ["127.0.0.3"],
      },
    },
  });
  await using program = await startProgram([
    `--config=${config.path}`,
    "--denied-target-cidrs=127.0.0.1,::1",
    "--default-source-ranges=127.0.0.2/31",
  ]);
  await program.waitForLog(
    "the forbidden target's warning",
    (line) =>
      /^Not forwarding tcp port/.test(line.message) && line["forwarder"] === "default/by-name",
  );

  // --default-source-ranges: 127.0.0.2 and .3 may use "open", 127.0.0.4 may not.
  await using fromTwo = await tcpFrom("127.0.0.2", open);
  assert.equal(await fromTwo.echo("open"), "open");
  await using fromFour = await tcpFrom("127.0.0.4", open);
  await within(fromFour.closed, 5000, "127.0.0.4 is closed at accept");

  // "localhost" resolves to a denied address: closed at accept, the echo server never sees it.
  const acceptedBefore = tcpEcho.accepted;
  await using viaName = await tcpFrom("127.0.0.2", byName);
  await within(viaName.closed, 5000, "closed: the target is forbidden");
  assert.equal(tcpEcho.accepted, acceptedBefore);

  // Per object: only 127.0.0.3, one connection at a time; UDP from elsewhere gets no session.
  await using three = await tcpFrom("127.0.0.3", limited);
  assert.equal(await three.echo("3"), "3");
  await using threeAgain = await tcpFrom("127.0.0.3", limited);
  await within(threeAgain.closed, 5000, "the second connection of 127.0.0.3 is closed");
  await using two = await tcpFrom("127.0.0.2", limited);
  await within(two.closed, 5000, "127.0.0.2 is not in the object's own sourceRanges");
  using udpThree = udpFrom("127.0.0.3");
  assert.equal(await udpThree.request("u3", limited, 5000), "u3");
  using udpTwo = udpFrom("127.0.0.2");
  assert.equal(await udpTwo.request("u2", limited, 300), undefined);

  const of = (name: string) => `forwarder="${name}",namespace="default"`;
  await waitForSeries(program, {
    [`undying_proxy_tcp_rejected_connections_total{${of("open")},reason="SourceNotAllowed"}`]: 1,
    [`undying_proxy_tcp_rejected_connections_total{${of("by-name")},reason="TargetForbidden"}`]: 1,
    [`undying_proxy_forwarder_state{${of("by-name")},protocol="tcp",state="forbidden"}`]: 1,
    [`undying_proxy_forwarder_state{${of("open")},protocol="tcp",state="listening"}`]: 1,
    [
      `undying_proxy_tcp_rejected_connections_total{${
        of("limited")
      },reason="MaxConnectionsPerSource"}`
    ]: 1,
    [`undying_proxy_tcp_rejected_connections_total{${of("limited")},reason="SourceNotAllowed"}`]: 1,
    [`undying_proxy_udp_rejected_datagrams_total{${of("limited")},reason="SourceNotAllowed"}`]: 1,
    [`undying_proxy_udp_sessions_total{${of("limited")}}`]: 1,
    [`undying_proxy_tcp_forwarder_errors_total{${of("by-name")},type="DialServerTarget"}`]: 0,
  });
  const refused = await program.waitForLog(
    "a rate-limited refusal line",
    (line) =>
      /^Refused a TCP connection/.test(line.message) && line["forwarder"] === "default/open",
  );
  assert.equal(refused["reason"], "SourceNotAllowed");
  assert.equal(refused["source"], "127.0.0.4");
});

Deno.test("file mode denies no target by default: a local user targets loopback on purpose", async () => {
  await using tcpEcho = startTcpEcho();
  const port = freePort();
  await using config = await policyConfig({
    loop: { tcp: { listenPort: port, targetHost: "localhost", targetPort: tcpEcho.port } },
  });
  await using program = await startProgram([`--config=${config.path}`]);
  await waitUntil("ready", async () => (await program.probe("/readyz")).status === 200, {
    timeoutMs: WAIT_MS,
  });
  await using client = await tcpFrom("127.0.0.2", port);
  assert.equal(await client.echo("loopback on purpose"), "loopback on purpose");
});
