/**
 * The program's small HTTP servers (metrics, probes) on `Deno.serve`: bind with a clear error, log
 * the address actually bound, optional TLS, graceful close.
 * @module
 */
import { getLogger } from "@logtape/logtape";
import type { BindAddress } from "./cli.ts";
import {
  createSelfSignedCertificate,
  type PemKeyPair,
  serverDnsNames,
} from "./self_signed_cert.ts";
import { errorMessage } from "./util/error_message.ts";

const log = getLogger(["undying-proxy", "http"]);

/** A PEM certificate chain and its private key. */
export type TlsFiles = PemKeyPair;

/** What to serve where. */
export interface HttpServerOptions {
  /** Used in logs and errors, e.g. `metrics`. */
  readonly name: string;
  /** An empty hostname means every interface: IPv6 and IPv4 when the host has IPv6, else IPv4. */
  readonly address: BindAddress;
  readonly handler: (request: Request) => Response | Promise<Response>;
  /** Serve HTTPS with this certificate. */
  readonly tls?: TlsFiles;
}

/** A listening server. */
export interface HttpServer extends AsyncDisposable {
  /** The address actually bound (the port is resolved when 0 was asked for). */
  readonly hostname: string;
  readonly port: number;
  /** Stops accepting, lets in-flight requests finish. */
  close(): Promise<void>;
}

/**
 * Starts serving at once.
 * @throws {Error} naming the server and address when the address cannot be bound.
 */
export function startHttpServer(options: HttpServerOptions): HttpServer {
  const { name, address } = options;
  const candidates = address.hostname === "" ? ["::", "0.0.0.0"] : [address.hostname];
  let server: Deno.HttpServer<Deno.NetAddr> | undefined;
  for (const [index, hostname] of candidates.entries()) {
    try {
      server = Deno.serve({
        hostname,
        port: address.port,
        ...options.tls,
        onListen: () => {},
        onError: (error) => {
          log.error("{server} server failed to answer a request: {reason}", {
            server: name,
            reason: errorMessage(error),
          });
          return new Response("internal error\n", { status: 500 });
        },
      }, options.handler);
      break;
    } catch (error) {
      // Without IPv6 in the kernel (some clusters), "::" cannot be bound: fall back to IPv4.
      if (index < candidates.length - 1 && !(error instanceof Deno.errors.AddrInUse)) continue;
      const shown = `${hostname.includes(":") ? `[${hostname}]` : hostname}:${address.port}`;
      const why = errorMessage(error);
      throw new Error(`Cannot serve ${name} on ${shown}: ${why}`, { cause: error });
    }
  }
  if (server === undefined) throw new Error(`Cannot serve ${name}: no address to bind`);
  const bound = server.addr;
  log.info("{server} server listening on {scheme}://{hostname}:{port}", {
    server: name,
    scheme: options.tls === undefined ? "http" : "https",
    hostname: bound.hostname,
    port: bound.port,
  });
  const running = server;
  const close = async () => {
    await running.shutdown();
  };
  return { hostname: bound.hostname, port: bound.port, close, [Symbol.asyncDispose]: close };
}

/**
 * Reads the certificate and key of `--metrics-cert-path`.
 * @throws {Error} naming the file that cannot be read.
 */
export async function readTlsFiles(
  dir: string,
  certName: string,
  keyName: string,
): Promise<TlsFiles> {
  const read = async (file: string) => {
    const path = `${dir.replace(/\/+$/, "")}/${file}`;
    try {
      return await Deno.readTextFile(path);
    } catch (error) {
      const why = errorMessage(error);
      throw new Error(`Cannot read the metrics TLS file ${path}: ${why}`, { cause: error });
    }
  };
  return { cert: await read(certName), key: await read(keyName) };
}

/** Where the metrics certificate comes from (the `--metrics-cert-*` flags). */
export interface MetricsTlsFlags {
  /** Directory of the certificate and key; without it a self-signed certificate is made. */
  readonly metricsCertPath?: string | undefined;
  readonly metricsCertName: string;
  readonly metricsCertKey: string;
}

/**
 * The metrics server's certificate: the files of `--metrics-cert-path`, else a self-signed one made
 * in memory now (for localhost, 127.0.0.1, ::1 and the host name), as the Go operator did.
 * @throws {Error} naming the file that cannot be read.
 */
export async function metricsTls(flags: MetricsTlsFlags): Promise<TlsFiles> {
  if (flags.metricsCertPath !== undefined) {
    return await readTlsFiles(flags.metricsCertPath, flags.metricsCertName, flags.metricsCertKey);
  }
  const dnsNames = serverDnsNames(hostnameIfAllowed());
  const ipAddresses = ["127.0.0.1", "::1"];
  const tls = await createSelfSignedCertificate({
    commonName: "undying-proxy",
    dnsNames,
    ipAddresses,
  });
  log.info(
    "metrics server uses a self-signed certificate made at start-up for {names} (no " +
      "--metrics-cert-path): scrapers must skip verification or trust this certificate",
    { names: [...dnsNames, ...ipAddresses] },
  );
  return tls;
}

/** The host name, or undefined when the program may not read it. */
function hostnameIfAllowed(): string | undefined {
  try {
    return Deno.hostname();
  } catch {
    return undefined;
  }
}
