import assert from "node:assert/strict";
import {
  cpuSeconds,
  groupMembers,
  kibField,
  memoryKiB,
  parseStat,
  processTree,
  treeMemory,
} from "./procfs.ts";

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

Deno.test("memoryKiB() takes RSS of one process and the PSS sum of several", () => {
  assert.equal(memoryKiB({ processes: 1, rssKiB: 100, pssKiB: 80 }), 100);
  assert.equal(memoryKiB({ processes: 3, rssKiB: 300, pssKiB: 120 }), 120);
});

Deno.test("processTree() and treeMemory() see a child of this process", async () => {
  const child = new Deno.Command("sleep", { args: ["30"], stdout: "null", stderr: "null" }).spawn();
  try {
    assert.ok(processTree([Deno.pid]).includes(child.pid));
    const memory = treeMemory([child.pid]);
    assert.equal(memory.processes, 1);
    assert.ok(memory.rssKiB > 0);
    assert.ok(cpuSeconds([child.pid]) >= 0);
    const ownGroup = Number(Deno.readTextFileSync("/proc/self/stat").split(") ")[1]?.split(" ")[2]);
    assert.ok(groupMembers(ownGroup).includes(child.pid));
  } finally {
    child.kill();
    await child.status;
  }
});
