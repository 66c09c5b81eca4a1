/**
 * Runs a Deno subcommand in a clean environment for black-box tests.
 * @module
 */
import { cleanEnv } from "../_support/clean_env.ts";

/** Exit code and decoded output of one Deno run. */
export interface DenoRun {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/**
 * Runs `deno <args>` in `cwd` (default: the repository root) with only PATH, HOME, what
 * {@linkcode cleanEnv} keeps (module cache, certificates, proxies) and `env`.
 */
export async function runDeno(
  args: readonly string[],
  env: Record<string, string> = {},
  cwd: string = new URL("../../", import.meta.url).pathname,
): Promise<DenoRun> {
  const output = await new Deno.Command(Deno.execPath(), {
    args: [...args],
    cwd,
    clearEnv: true,
    env: cleanEnv({ PATH: Deno.env.get("PATH") ?? "", HOME: Deno.env.get("HOME") ?? "", ...env }),
    stdout: "piped",
    stderr: "piped",
  }).output();
  const decoder = new TextDecoder();
  return {
    code: output.code,
    stdout: decoder.decode(output.stdout),
    stderr: decoder.decode(output.stderr),
  };
}
