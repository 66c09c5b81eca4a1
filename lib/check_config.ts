/**
 * `--check-config`: validates the `--config` file exactly as a reload would (the same read, the same
 * parser) and reports every problem, or a one-line summary of what it would forward.
 * @module
 */
import { ConfigError, describeProblem, parseConfig, readConfig } from "./file_source.ts";
import type { ForwarderSpec } from "./spec.ts";

/** The verdict on a config file: valid or not, and the lines that say so. */
export interface ConfigCheck {
  readonly valid: boolean;
  /** One summary line when valid; a heading and one line per problem otherwise. */
  readonly lines: readonly string[];
}

/**
 * Reads and validates the config file at `path` (refused unread above `maxBytes`, as a reload).
 * @throws {Error} only on a failure that is not about the file (a bug), never for a bad file.
 */
export async function checkConfig(path: string, maxBytes?: number): Promise<ConfigCheck> {
  let specs: ForwarderSpec[];
  try {
    specs = parseConfig(path, await readConfig(path, maxBytes));
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    const count = error.problems.length;
    return {
      valid: false,
      lines: [
        `${path}: invalid, ${count} problem${count === 1 ? "" : "s"}:`,
        ...error.problems.map((problem) => `  ${describeProblem(problem)}`),
      ],
    };
  }
  return { valid: true, lines: [`${path}: valid, ${summary(specs)}`] };
}

/** `2 forwarders: TCP ports 18080, UDP ports 19000`. */
function summary(specs: readonly ForwarderSpec[]): string {
  const count = `${specs.length} forwarder${specs.length === 1 ? "" : "s"}`;
  const ports = (["tcp", "udp"] as const).flatMap((protocol) => {
    const listening = specs.flatMap((spec) => spec[protocol]?.listenPort ?? []);
    if (listening.length === 0) return [];
    const sorted = listening.sort((a, b) => a - b).join(", ");
    return [`${protocol.toUpperCase()} port${listening.length === 1 ? "" : "s"} ${sorted}`];
  });
  return ports.length === 0 ? count : `${count}: ${ports.join(", ")}`;
}
