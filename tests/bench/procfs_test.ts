import assert from "node:assert/strict";
import { countListeners, kibField, memoryKiB, parseStat } from "./procfs.ts";

Deno.test("parseStat() counts fields after the command name, even with spaces and parens in it", () => {
  const stat = "4242 (my (odd) proc) S 17 4242 4242 0 -1 4194560 100 0 0 0 " +
    "250 30 7 3 20 0 1 0 100 1000 50";
  assert.deepEqual(parseStat(stat), { ppid: 17, pgrp: 4242, ticks: 250 + 30 + 7 + 3 });
});

Deno.test("kibField() reads a kB field and is 0 when it is absent", () => {
  const status = "Name:\tx\nVmPeak:\t  2048 kB\nVmRSS:\t  1536 kB\n";
  assert.equal(kibField(status, "VmRSS"), 1536);
  assert.equal(kibField(status, "Pss"), 0);
});

Deno.test("countListeners() counts listening sockets on one port, not connections or other ports", () => {
  const table = [
    "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid",
    "   0: 0100007F:A028 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0",
    "   1: 0100007F:A028 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0",
    "   2: 0100007F:A028 0100007F:9781 01 00000000:00000000 00:00000000 00000000     0",
    "   3: 0100007F:0A28 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0",
    "",
  ].join("\n");
  assert.equal(countListeners(table, 0xa028), 2);
  assert.equal(countListeners(table, 0x0a28), 1);
  assert.equal(countListeners(table, 0x9781), 0);
});

Deno.test("memoryKiB() takes RSS of one process and the PSS sum of several", () => {
  assert.equal(memoryKiB({ processes: 1, rssKiB: 100, pssKiB: 80 }), 100);
  assert.equal(memoryKiB({ processes: 3, rssKiB: 300, pssKiB: 120 }), 120);
});

// Listing /proc needs --allow-all under Deno (the benchmark runs with -A); `deno task test` grants
// less, so this check runs in a child `deno` with -A that reports what it saw.
Deno.test("processTree() and treeMemory() see a child of this process", async () => {
  const script = `
    import { cpuSeconds, groupMembers, processTree, treeMemory } from ${
    JSON.stringify(new URL("./procfs.ts", import.meta.url).href)
  };
    const child = new Deno.Command("sleep", { args: ["30"], stdout: "null", stderr: "null" }).spawn();
    try {
      const ownGroup = Number(Deno.readTextFileSync("/proc/self/stat").split(") ")[1]?.split(" ")[2]);
      console.log(JSON.stringify({
        inTree: processTree([Deno.pid]).includes(child.pid),
        memory: treeMemory([child.pid]),
        cpu: cpuSeconds([child.pid]),
        inGroup: groupMembers(ownGroup).includes(child.pid),
      }));
    } finally {
      child.kill();
      await child.status;
    }`;
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["eval", "-A", script],
    env: { DENO_NO_UPDATE_CHECK: "1" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(output.code, 0, new TextDecoder().decode(output.stderr));
  const seen = JSON.parse(new TextDecoder().decode(output.stdout));
  assert.equal(seen.inTree, true);
  assert.equal(seen.memory.processes, 1);
  assert.ok(seen.memory.rssKiB > 0);
  assert.ok(seen.cpu >= 0);
  assert.equal(seen.inGroup, true);
});
