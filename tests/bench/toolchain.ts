/**
 * Everything the benchmark runs besides the forwarding engine: Debian packages (installed with apt
 * when missing) and the C load generators (compiled into the cache directory, keyed by source hash).
 * @module
 */

/** Debian packages the benchmark needs, with the binary each provides. */
const PACKAGES = [
  { pkg: "nginx", file: "/usr/sbin/nginx" },
  { pkg: "libnginx-mod-stream", file: "/usr/lib/nginx/modules/ngx_stream_module.so" },
  { pkg: "haproxy", file: "/usr/sbin/haproxy" },
  { pkg: "socat", file: "/usr/bin/socat" },
  { pkg: "iperf3", file: "/usr/bin/iperf3" },
] as const;

/** Paths of every external program the benchmark runs. */
export interface Tools {
  readonly nginx: string;
  readonly nginxStreamModule: string;
  readonly haproxy: string;
  readonly socat: string;
  readonly iperf3: string;
  /** `echo_server.c`: TCP/UDP echo targets. */
  readonly echoServer: string;
  /** `load_client.c`: connection-rate, UDP request/response, latency and hold load generators. */
  readonly loadClient: string;
}

function hex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

function exists(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}

async function run(command: string, args: string[], env: Record<string, string> = {}) {
  const output = await new Deno.Command(command, { args, env, stdout: "piped", stderr: "piped" })
    .output();
  const text = new TextDecoder().decode(output.stdout) + new TextDecoder().decode(output.stderr);
  if (!output.success) {
    throw new Error(
      `${command} ${args.join(" ")} failed (code ${output.code}): ${text.slice(-2000)}`,
    );
  }
  return text;
}

/**
 * Installs the missing Debian packages with apt-get (needs root): all the benchmark needs, or only
 * those named in `only` (tests that need a few real peers).
 */
export async function installPackages(
  log: (line: string) => void,
  only?: readonly typeof PACKAGES[number]["pkg"][],
): Promise<void> {
  const missing = PACKAGES.filter((p) => !exists(p.file) && (only?.includes(p.pkg) ?? true))
    .map((p) => p.pkg);
  if (missing.length === 0) return;
  if (Deno.uid() !== 0) {
    throw new Error(
      `Missing packages ${missing.join(", ")}: run 'sudo apt-get install ${missing.join(" ")}'`,
    );
  }
  log(`installing ${missing.join(", ")} with apt-get`);
  const env = { DEBIAN_FRONTEND: "noninteractive" };
  await run("apt-get", ["update"], env);
  await run("apt-get", ["install", "-y", "--no-install-recommends", ...missing], env);
}

/** Compiles `source` (beside this module) unless the cache already holds this exact version. */
async function compile(source: string, binDir: string, name: string): Promise<string> {
  const url = new URL(source, import.meta.url);
  const code = await Deno.readFile(url);
  const hash = hex(new Uint8Array(await crypto.subtle.digest("SHA-256", code))).slice(0, 12);
  const binary = `${binDir}/${name}-${hash}`;
  if (exists(binary)) return binary;
  const partial = `${binary}.${Deno.pid}.tmp`;
  await run("gcc", ["-O2", "-Wall", "-Wextra", "-Werror", "-o", partial, url.pathname]);
  await Deno.rename(partial, binary);
  return binary;
}

/** Installs and compiles what is missing; returns the paths. */
export async function prepareTools(cacheDir: string, log: (line: string) => void): Promise<Tools> {
  await installPackages(log);
  const binDir = `${cacheDir}/bin`;
  await Deno.mkdir(binDir, { recursive: true });
  return {
    nginx: "/usr/sbin/nginx",
    nginxStreamModule: "/usr/lib/nginx/modules/ngx_stream_module.so",
    haproxy: "/usr/sbin/haproxy",
    socat: "/usr/bin/socat",
    iperf3: "/usr/bin/iperf3",
    echoServer: await compile("c/echo_server.c", binDir, "echo_server"),
    loadClient: await compile("c/load_client.c", binDir, "load_client"),
  };
}

/** Version line of each peer, for the report. */
export async function toolVersions(tools: Tools): Promise<Record<string, string>> {
  const first = async (command: string, args: string[], pattern: RegExp) => {
    const text = await run(command, args).catch((e: unknown) => String(e));
    return text.match(pattern)?.[0] ?? "unknown";
  };
  return {
    deno: Deno.version.deno,
    nginx: await first(tools.nginx, ["-v"], /nginx\/[\d.]+/),
    haproxy: await first(tools.haproxy, ["-v"], /version [\d.]+/),
    socat: await first(tools.socat, ["-V"], /socat version [\d.]+/),
    iperf3: await first(tools.iperf3, ["--version"], /iperf 3[\d.]+/),
  };
}
