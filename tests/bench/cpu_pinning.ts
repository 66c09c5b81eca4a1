/**
 * Pins processes to CPUs for the round-trip runs. With one datagram in flight, the round trip
 * depends mostly on where the scheduler puts the load generator, the forwarder and the echo server:
 * on one CPU a wake-up is cheap, across CPUs (in a VM) it costs an interrupt, and the scheduler
 * moves them between the two at random moments. Pinned, every peer is measured the same way: the
 * forwarder on the last CPU, the load generator and the echo server on CPU 0.
 * @module
 */
import { processTree } from "./procfs.ts";

/** The CPUs of this machine, as `taskset` lists them. */
function allCpus(): string {
  return `0-${navigator.hardwareConcurrency - 1}`;
}

/** Whether pinning applies (two CPUs at least). */
export function canPin(): boolean {
  return navigator.hardwareConcurrency >= 2;
}

/** The forwarder's CPU: the last one. */
export function forwarderCpu(): number {
  return navigator.hardwareConcurrency - 1;
}

/** Sets the CPUs of every thread of `roots` and their descendants (`taskset -a -p`). */
export async function pinTree(roots: readonly number[], cpus: string): Promise<void> {
  for (const pid of processTree(roots)) {
    const { success, stderr } = await new Deno.Command("taskset", {
      args: ["-a", "-p", "-c", cpus, String(pid)],
      stdout: "null",
      stderr: "piped",
    }).output();
    // A process that exited meanwhile is not an error.
    if (!success && !/No such process/.test(new TextDecoder().decode(stderr))) {
      throw new Error(`taskset ${cpus} ${pid}: ${new TextDecoder().decode(stderr).trim()}`);
    }
  }
}

/** Lets `roots` run on every CPU again. */
export function unpinTree(roots: readonly number[]): Promise<void> {
  return pinTree(roots, allCpus());
}
