/**
 * The process's file descriptor limit, read once at start, and the sockets budget derived from it
 * (`--max-open-sockets`), so that connections and sessions can never use up the descriptors the
 * program itself needs.
 * @module
 */
import { getLogger } from "@logtape/logtape";
import { defaultSocketBudget, fdReserve } from "./forward/budget.ts";
import { systemWorker } from "./ffi/system_worker_client.ts";

const log = getLogger(["undying-proxy"]);

/** Budget when the limit cannot be read (no FFI): the cap of the flag's derived default. */
const UNKNOWN_LIMIT_BUDGET = 1_000_000;

/** The file descriptor limit and the sockets budget in force. */
export interface ResourceLimits {
  /** Soft RLIMIT_NOFILE; undefined when it cannot be read (FFI not permitted). */
  readonly fdLimit: number | undefined;
  /** Sockets connections and sessions may hold at once (all threads together). */
  readonly maxOpenSockets: number;
}

/**
 * Reads the limit (through the system worker) and derives the sockets budget when `flag` is 0; warns when an explicit `flag`
 * leaves less than the reserve free.
 */
export async function resourceLimits(flag: number): Promise<ResourceLimits> {
  const system = systemWorker();
  const soft = (await system?.fdLimit())?.soft;
  const open = await system?.openFdCount() ?? 0;
  if (soft === undefined) {
    if (flag === 0) {
      log.warn(
        "Cannot read the file descriptor limit (needs --allow-ffi and glibc); --max-open-sockets is {max}",
        { max: UNKNOWN_LIMIT_BUDGET },
      );
    }
    return { fdLimit: undefined, maxOpenSockets: flag === 0 ? UNKNOWN_LIMIT_BUDGET : flag };
  }
  const derived = defaultSocketBudget(soft, open);
  if (flag !== 0 && flag > derived) {
    log.warn(
      "--max-open-sockets={max} leaves fewer than {reserve} of the {limit} file descriptors free: " +
        "the process may run out of them",
      { max: flag, reserve: fdReserve(soft), limit: soft },
    );
  }
  return { fdLimit: soft, maxOpenSockets: flag === 0 ? derived : flag };
}
