/**
 * Exec credential plugins (`users[].user.exec` in a kubeconfig), as client-go runs them: the plugin
 * prints an `ExecCredential` (client.authentication.k8s.io/v1 or v1beta1) whose token or client
 * certificate is cached until its `expirationTimestamp`.
 *
 * @module
 */
import type { Credentials, CredentialSource } from "./cluster.ts";
import { KubeconfigError } from "./kubeconfig_error.ts";
import { errorMessage } from "../util/error_message.ts";

/** The exec plugin API versions this client speaks. */
export const EXEC_API_VERSIONS = [
  "client.authentication.k8s.io/v1",
  "client.authentication.k8s.io/v1beta1",
] as const;

/** A validated `exec` section of a kubeconfig user. */
export interface ExecPluginConfig {
  /** Command to run; already resolved against the kubeconfig's folder when it contains a slash. */
  command: string;
  /** Arguments. */
  args: string[];
  /** Extra environment variables for the plugin. */
  env: Record<string, string>;
  /** One of {@linkcode EXEC_API_VERSIONS}. */
  apiVersion: (typeof EXEC_API_VERSIONS)[number];
  /** Shown when the command cannot be found. */
  installHint?: string;
  /** Cluster information passed in `KUBERNETES_EXEC_INFO` when `provideClusterInfo` is set. */
  cluster?: { server: string; "certificate-authority-data"?: string };
}

/** Where the plugin is configured, for error messages. */
export interface ExecOrigin {
  /** The kubeconfig file. */
  file: string;
  /** The field path of the `exec` section. */
  field: string;
  /** The kubeconfig user's name. */
  user: string;
}

/** Options of {@linkcode ExecCredentialSource}. */
export interface ExecCredentialOptions {
  /** Kill the plugin after this long. @default 60000 */
  timeoutMs?: number;
  /** Clock, replaceable in tests. @default Date.now */
  now?: () => number;
}

interface Cached {
  credentials: Credentials;
  expiresAtMs: number;
}

/** Runs an exec plugin on demand and caches its credentials until they expire. */
export class ExecCredentialSource implements CredentialSource {
  readonly #config: ExecPluginConfig;
  readonly #origin: ExecOrigin;
  readonly #timeoutMs: number;
  readonly #now: () => number;
  #cached: Cached | undefined;
  #pending: Promise<Cached> | undefined;

  /**
   * Checks that the process may run the plugin.
   * @throws {KubeconfigError} when the `run` permission for the command is not granted.
   */
  constructor(config: ExecPluginConfig, origin: ExecOrigin, options: ExecCredentialOptions = {}) {
    const state = Deno.permissions.querySync({ name: "run", command: config.command }).state;
    if (state !== "granted") {
      throw new KubeconfigError(
        origin.file,
        `${origin.field}.command`,
        `user "${origin.user}" gets credentials by running "${config.command}", but this process ` +
          `may not run programs (run permission is ${state}; grant --allow-run=${config.command} ` +
          `or use a token or client certificate)`,
      );
    }
    this.#config = config;
    this.#origin = origin;
    this.#timeoutMs = options.timeoutMs ?? 60_000;
    this.#now = options.now ?? Date.now;
  }

  /** Cached credentials, or the plugin's fresh answer when none are cached or they expired. */
  async get(): Promise<Credentials> {
    if (this.#cached && this.#now() < this.#cached.expiresAtMs) return this.#cached.credentials;
    this.#pending ??= this.#run().finally(() => this.#pending = undefined);
    this.#cached = await this.#pending;
    return this.#cached.credentials;
  }

  /** Drops the cached credentials (after a 401), so the plugin runs again on the next `get()`. */
  invalidate(): boolean {
    this.#cached = undefined;
    return true;
  }

  async #run(): Promise<Cached> {
    const { command, args, apiVersion } = this.#config;
    const execInfo = {
      apiVersion,
      kind: "ExecCredential",
      spec: {
        interactive: false,
        ...(this.#config.cluster ? { cluster: this.#config.cluster } : {}),
      },
    };
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), this.#timeoutMs);
    let output: Deno.CommandOutput;
    try {
      output = await new Deno.Command(command, {
        args,
        env: { ...this.#config.env, KUBERNETES_EXEC_INFO: JSON.stringify(execInfo) },
        stdin: "null",
        stdout: "piped",
        stderr: "piped",
        signal: controller.signal,
      }).output();
    } catch (error) {
      const hint = this.#config.installHint ? ` (${this.#config.installHint.trim()})` : "";
      throw this.#error(`cannot run "${command}": ${errorMessage(error)}${hint}`, error);
    } finally {
      clearTimeout(timer);
    }
    if (controller.signal.aborted) {
      throw this.#error(`"${command}" did not finish within ${this.#timeoutMs} ms`);
    }
    if (!output.success) {
      const stderr = new TextDecoder().decode(output.stderr).trim().slice(0, 512);
      throw this.#error(`"${command}" exited with code ${output.code}: ${stderr || "(no output)"}`);
    }
    return this.#parse(new TextDecoder().decode(output.stdout));
  }

  #parse(stdout: string): Cached {
    let parsed: unknown;
    try {
      parsed = JSON.parse(stdout);
    } catch (error) {
      throw this.#error(`plugin output is not JSON: ${stdout.trim().slice(0, 256)}`, error);
    }
    const credential = parsed as {
      apiVersion?: unknown;
      kind?: unknown;
      status?: {
        token?: unknown;
        clientCertificateData?: unknown;
        clientKeyData?: unknown;
        expirationTimestamp?: unknown;
      };
    };
    if (
      credential?.kind !== "ExecCredential" || credential.apiVersion !== this.#config.apiVersion
    ) {
      throw this.#error(
        `plugin printed kind ${JSON.stringify(credential?.kind)} apiVersion ` +
          `${
            JSON.stringify(credential?.apiVersion)
          }, expected ExecCredential ${this.#config.apiVersion}`,
      );
    }
    const status = credential.status ?? {};
    const credentials: Credentials = {};
    if (typeof status.token === "string" && status.token !== "") {
      credentials.authorization = `Bearer ${status.token}`;
    }
    if (
      typeof status.clientCertificateData === "string" && typeof status.clientKeyData === "string"
    ) {
      credentials.clientCertificate = {
        cert: status.clientCertificateData,
        key: status.clientKeyData,
      };
    }
    if (!credentials.authorization && !credentials.clientCertificate) {
      throw this.#error(
        "plugin returned neither status.token nor clientCertificateData/clientKeyData",
      );
    }
    let expiresAtMs = Number.POSITIVE_INFINITY;
    if (status.expirationTimestamp !== undefined) {
      expiresAtMs = Date.parse(String(status.expirationTimestamp));
      if (Number.isNaN(expiresAtMs)) {
        throw this.#error(
          `plugin returned an invalid expirationTimestamp ${
            JSON.stringify(status.expirationTimestamp)
          }`,
        );
      }
    }
    return { credentials, expiresAtMs };
  }

  #error(why: string, cause?: unknown): KubeconfigError {
    const { file, field, user } = this.#origin;
    return new KubeconfigError(file, field, `exec plugin of user "${user}": ${why}`, { cause });
  }
}
