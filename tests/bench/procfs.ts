/**
 * Reads CPU time and memory of a process tree from `/proc` (Linux only).
 * @module
 */

/** Clock ticks per second of `utime`/`stime` in `/proc/<pid>/stat` (USER_HZ, 100 on Linux). */
const TICKS_PER_SECOND = 100;

interface StatLine {
  readonly ppid: number;
  /** Process group. */
  readonly pgrp: number;
  /** utime + stime of the process itself plus cutime + cstime of its reaped children, in ticks. */
  readonly ticks: number;
}

/** Parses `/proc/<pid>/stat`; fields are counted after the `)` closing the command name. */
export function parseStat(text: string): StatLine {
  const fields = text.slice(text.lastIndexOf(")") + 2).split(" ");
  const field = (i: number) => Number(fields[i] ?? "0");
  return {
    ppid: field(1),
    pgrp: field(2),
    ticks: field(11) + field(12) + field(13) + field(14),
  };
}

function readStat(pid: number): StatLine | undefined {
  try {
    return parseStat(Deno.readTextFileSync(`/proc/${pid}/stat`));
  } catch {
    return undefined; // the process exited meanwhile
  }
}

function* allProcesses(): Generator<[number, StatLine]> {
  for (const entry of Deno.readDirSync("/proc")) {
    const pid = Number(entry.name);
    if (!Number.isInteger(pid)) continue;
    const stat = readStat(pid);
    if (stat !== undefined) yield [pid, stat];
  }
}

/** Live members of process group `pgid` (e.g. forks that outlived the group leader). */
export function groupMembers(pgid: number): number[] {
  const members: number[] = [];
  for (const [pid, stat] of allProcesses()) if (stat.pgrp === pgid) members.push(pid);
  return members;
}

/** The given processes and all their live descendants. */
export function processTree(roots: readonly number[]): number[] {
  const children = new Map<number, number[]>();
  for (const [pid, stat] of allProcesses()) {
    const siblings = children.get(stat.ppid) ?? [];
    siblings.push(pid);
    children.set(stat.ppid, siblings);
  }
  const tree: number[] = [];
  const queue = [...roots];
  for (let pid = queue.shift(); pid !== undefined; pid = queue.shift()) {
    tree.push(pid);
    queue.push(...(children.get(pid) ?? []));
  }
  return tree;
}

/** CPU seconds (user + system, including reaped children) used so far by the trees under `roots`. */
export function cpuSeconds(roots: readonly number[]): number {
  let ticks = 0;
  for (const pid of processTree(roots)) ticks += readStat(pid)?.ticks ?? 0;
  return ticks / TICKS_PER_SECOND;
}

/** Reads `Name:   123 kB` from a `/proc` status-like file, in KiB (0 when absent). */
export function kibField(text: string, name: string): number {
  const match = text.match(new RegExp(`^${name}:\\s+(\\d+) kB`, "m"));
  return match?.[1] === undefined ? 0 : Number(match[1]);
}

/** Memory of the trees under `roots`: RSS of each process and PSS summed over the tree, in KiB. */
export interface TreeMemory {
  readonly processes: number;
  readonly rssKiB: number;
  readonly pssKiB: number;
}

/** Memory of every process in the trees under `roots`. */
export function treeMemory(roots: readonly number[]): TreeMemory {
  let rssKiB = 0;
  let pssKiB = 0;
  let processes = 0;
  for (const pid of processTree(roots)) {
    try {
      rssKiB += kibField(Deno.readTextFileSync(`/proc/${pid}/status`), "VmRSS");
      pssKiB += kibField(Deno.readTextFileSync(`/proc/${pid}/smaps_rollup`), "Pss");
      processes++;
    } catch {
      // exited meanwhile
    }
  }
  return { processes, rssKiB, pssKiB };
}

/**
 * The memory figure compared across forwarders: RSS for a single process; for several processes
 * (nginx master + worker, socat's forks) the PSS sum, so shared pages are not counted many times.
 */
export function memoryKiB(memory: TreeMemory): number {
  return memory.processes > 1 ? memory.pssKiB : memory.rssKiB;
}

/** The hard limit on open files of this process (children inherit it), from `/proc/self/limits`. */
export function hardFileLimit(): number {
  const line = Deno.readTextFileSync("/proc/self/limits").split("\n")
    .find((l) => l.startsWith("Max open files"));
  const hard = line?.split(/\s{2,}/)[2];
  return hard === undefined || hard === "unlimited" ? 1 << 20 : Number(hard);
}

/** TCP state code of a listening socket in `/proc/net/tcp`. */
const TCP_LISTEN = "0A";

/** How many sockets in `/proc/net/tcp`-format `text` listen on local `port` (SO_REUSEPORT: > 1). */
export function countListeners(text: string, port: number): number {
  const wanted = port.toString(16).toUpperCase().padStart(4, "0");
  let count = 0;
  for (const line of text.split("\n").slice(1)) {
    const [, local, , state] = line.trim().split(/\s+/);
    if (state === TCP_LISTEN && local?.split(":")[1] === wanted) count++;
  }
  return count;
}

/** Listening IPv4 TCP sockets on `port` in this network namespace. */
export function tcpListeners(port: number): number {
  return countListeners(Deno.readTextFileSync("/proc/net/tcp"), port);
}
