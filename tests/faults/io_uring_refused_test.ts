/**
 * The kernel refusing io_uring (`kernel.io_uring_disabled=2`, what RuntimeDefault seccomp profiles
 * do to a container): `--udp-engine=auto` keeps the batched engine on epoll and says why;
 * `--udp-engine=io_uring` stops with the reason. The switch is the machine's, so this needs root;
 * it is put back however the test ends.
 */
import assert from "node:assert/strict";
import { patternBytes } from "../_support/net_tcp.ts";
import { startUdpEcho, udpClient } from "../_support/net_udp.ts";
import { freePort, runProgram, startProgram } from "../_support/program.ts";
import { waitUntil } from "../_support/wait.ts";
import { tempConfigFile, udpDocument } from "./_config.ts";

const SWITCH = "kernel.io_uring_disabled";

/** Sets a sysctl through `sysctl` (Deno itself may not write below /proc/sys). */
async function sysctl(value?: string): Promise<string> {
  const args = value === undefined ? ["-n", SWITCH] : ["-w", `${SWITCH}=${value}`];
  const output = await new Deno.Command("sysctl", { args, stderr: "piped" }).output();
  if (!output.success) {
    throw new Error(`sysctl ${args.join(" ")}: ${new TextDecoder().decode(output.stderr)}`);
  }
  return new TextDecoder().decode(output.stdout).trim();
}

/** Runs `test` with io_uring disabled for every process, then restores the switch. */
async function withIoUringDisabled(test: () => Promise<void>): Promise<void> {
  const before = await sysctl();
  await sysctl("2");
  try {
    await test();
  } finally {
    await sysctl(before);
  }
}

/** Root on a kernel with the switch (Linux 6.6+); CI runs as root there, so it never skips. */
const canSwitch = Deno.uid() === 0 && (() => {
  try {
    return Deno.statSync("/proc/sys/kernel/io_uring_disabled").isFile;
  } catch {
    return false;
  }
})();

Deno.test({
  name: "io_uring refused by the kernel: auto keeps the batched engine on epoll and logs why",
  ignore: !canSwitch && Deno.env.get("CI") !== "true",
  fn: () =>
    withIoUringDisabled(async () => {
      await using udpEcho = startUdpEcho();
      const udpPort = freePort();
      await using config = await tempConfigFile([udpDocument("game", udpPort, udpEcho.port)]);
      await using program = await startProgram(["--config", config.path]);
      await waitUntil("readiness", async () => (await program.probe("/readyz")).status === 200, {
        timeoutMs: 30_000,
      });
      const why = await program.waitForLog(
        "the reason",
        (line) => /io_uring is not available/.test(line.message),
      );
      assert.match(why.message, /io_uring_setup: .*EPERM.*the batched UDP engine uses epoll/);
      await program.waitForLog("the engine", (line) =>
        line.message === "UDP engine: batched (1 thread(s))");
      const { series } = await program.scrape();
      assert.equal(series.get('undying_proxy_udp_engine{engine="batched"}'), 1);
      assert.equal(series.get('undying_proxy_udp_engine{engine="io_uring"}'), 0);
      using client = udpClient();
      const datagram = patternBytes(1200, 8);
      assert.deepEqual(await client.request(datagram, udpPort, 5000), datagram);
    }),
});

Deno.test({
  name: "io_uring refused by the kernel: --udp-engine=io_uring stops with the reason",
  ignore: !canSwitch && Deno.env.get("CI") !== "true",
  fn: () =>
    withIoUringDisabled(async () => {
      await using config = await tempConfigFile([]);
      const result = await runProgram([
        `--config=${config.path}`,
        "--udp-engine=io_uring",
        "--metrics-bind-address=0",
        "--health-probe-bind-address=0",
      ]);
      assert.equal(result.code, 1, result.stderr);
      assert.match(
        result.stderr,
        /io_uring UDP engine cannot run: io_uring is not available: .*EPERM/,
      );
    }),
});
