/**
 * Reads a kubeconfig (an explicit file, the `KUBECONFIG` list merged as kubectl does, or
 * `~/.kube/config`) into a {@linkcode ClusterConfig}. Every problem is a {@linkcode KubeconfigError}
 * naming the file, the field and why.
 *
 * @module
 */
import { load as loadYaml } from "js-yaml";
import { dirname, isAbsolute, resolve } from "node:path";
import type { ClientCertificate, ClusterConfig, CredentialSource } from "./cluster.ts";
import { NO_CREDENTIALS } from "./cluster.ts";
import { staticCredentials, tokenFileCredentials } from "./credentials.ts";
import {
  EXEC_API_VERSIONS,
  ExecCredentialSource,
  type ExecPluginConfig,
} from "./exec_credential.ts";
import { KubeconfigError } from "./kubeconfig_error.ts";
import { errorMessage } from "../util/error_message.ts";

/** Options of {@linkcode loadKubeconfig}. */
export interface KubeconfigOptions {
  /** Explicit kubeconfig file (the `--kubeconfig` flag); overrides `KUBECONFIG`. */
  path?: string;
  /** Context to use. @default the kubeconfig's `current-context` */
  context?: string;
  /** Environment lookup (`KUBECONFIG`, `HOME`). @default Deno.env.get */
  env?: (name: string) => string | undefined;
}

type Section = "clusters" | "users" | "contexts";
const ENTRY_KEY: Record<Section, string> = {
  clusters: "cluster",
  users: "user",
  contexts: "context",
};

/** One named entry of a kubeconfig list, with the file that defined it. */
interface Entry {
  value: Record<string, unknown>;
  file: string;
  field: string;
}

interface Merged {
  files: string[];
  currentContext: string | undefined;
  entries: Record<Section, Map<string, Entry>>;
}

/**
 * Finds the kubeconfig files to read: `path`, else the existing files of `KUBECONFIG`, else
 * `$HOME/.kube/config`.
 * @throws {KubeconfigError} when `KUBECONFIG` names only missing files.
 */
export async function kubeconfigPaths(options: KubeconfigOptions = {}): Promise<string[]> {
  if (options.path !== undefined) return [resolve(options.path)];
  const env = options.env ?? Deno.env.get;
  const list = (env("KUBECONFIG") ?? "").split(":").filter((p) => p !== "");
  if (list.length > 0) {
    const existing = [];
    for (const path of list) if (await exists(path)) existing.push(resolve(path));
    if (existing.length === 0) {
      throw new KubeconfigError(
        "KUBECONFIG",
        "",
        `none of the listed files exists: ${list.join(", ")}`,
      );
    }
    return existing;
  }
  return [resolve(env("HOME") ?? ".", ".kube", "config")];
}

/**
 * Loads the cluster, user and namespace of a kubeconfig context.
 * @throws {KubeconfigError} naming the file, field and reason for every unusable setting.
 */
export async function loadKubeconfig(options: KubeconfigOptions = {}): Promise<ClusterConfig> {
  const merged = await readMerged(await kubeconfigPaths(options));
  const firstFile = merged.files[0] ?? "kubeconfig";
  const contextName = options.context ?? merged.currentContext;
  if (contextName === undefined || contextName === "") {
    throw new KubeconfigError(firstFile, "current-context", "is not set and no context was given");
  }
  const context = lookup(merged, {
    section: "contexts",
    name: contextName,
    referrer: firstFile,
    referrerField: "current-context",
  });
  const clusterName = requiredString(context, "cluster");
  const cluster = lookup(merged, {
    section: "clusters",
    name: clusterName,
    referrer: context.file,
    referrerField: `${context.field}.cluster`,
  });
  const userName = optionalString(context, "user");
  const user = userName === undefined || userName === "" ? undefined : lookup(merged, {
    section: "users",
    name: userName,
    referrer: context.file,
    referrerField: `${context.field}.user`,
  });

  const server = serverUrl(cluster);
  const caData = pemOrFile(cluster, "certificate-authority");
  const config: ClusterConfig = {
    server,
    caCerts: caData === undefined ? [] : [checkPem({ ...caData, entry: cluster }, "CERTIFICATE")],
    credentials: NO_CREDENTIALS,
    namespace: optionalString(context, "namespace") || "default",
    source: `context "${contextName}" in ${context.file}`,
  };
  const proxyUrl = optionalString(cluster, "proxy-url");
  if (proxyUrl) config.proxyUrl = proxyUrl;
  if (user !== undefined) {
    const clientCertificate = clientCertificateOf(user);
    if (clientCertificate) config.clientCertificate = clientCertificate;
    config.credentials = credentialsOf(user, userName ?? "", {
      server,
      ...(caData ? { "certificate-authority-data": btoa(caData.pem) } : {}),
    });
  }
  return config;
}

async function readMerged(files: string[]): Promise<Merged> {
  const merged: Merged = {
    files,
    currentContext: undefined,
    entries: { clusters: new Map(), users: new Map(), contexts: new Map() },
  };
  for (const file of files) {
    const doc = await readDocument(file);
    const current = doc["current-context"];
    if (merged.currentContext === undefined && typeof current === "string" && current !== "") {
      merged.currentContext = current;
    }
    for (const section of ["clusters", "users", "contexts"] as const) {
      for (const [name, entry] of sectionEntries(doc, section, file)) {
        // Like kubectl: the first file that defines a name wins.
        if (!merged.entries[section].has(name)) merged.entries[section].set(name, entry);
      }
    }
  }
  return merged;
}

async function readDocument(file: string): Promise<Record<string, unknown>> {
  let text: string;
  try {
    text = await Deno.readTextFile(file);
  } catch (error) {
    throw new KubeconfigError(file, "", `cannot read kubeconfig: ${errorMessage(error)}`, {
      cause: error,
    });
  }
  let doc: unknown;
  try {
    doc = loadYaml(text);
  } catch (error) {
    throw new KubeconfigError(file, "", `invalid YAML: ${errorMessage(error)}`, { cause: error });
  }
  if (doc === null || doc === undefined) return {};
  if (!isRecord(doc)) throw new KubeconfigError(file, "", "is not a YAML mapping");
  return doc;
}

function sectionEntries(
  doc: Record<string, unknown>,
  section: Section,
  file: string,
): Array<[string, Entry]> {
  const list = doc[section];
  if (list === undefined || list === null) return [];
  if (!Array.isArray(list)) throw new KubeconfigError(file, section, "must be a list");
  return list.map((item: unknown, index) => {
    const name = isRecord(item) ? item["name"] : undefined;
    if (typeof name !== "string" || name === "") {
      throw new KubeconfigError(file, `${section}[${index}].name`, "must be a non-empty string");
    }
    const key = ENTRY_KEY[section];
    const field = `${section}[name="${name}"].${key}`;
    const value = (item as Record<string, unknown>)[key] ?? {};
    if (!isRecord(value)) throw new KubeconfigError(file, field, "must be a mapping");
    return [name, { value, file, field }];
  });
}

/** The entry `name` of `section`, named by `referrerField` in the file `referrer`. */
function lookup(
  merged: Merged,
  ref: {
    readonly section: Section;
    readonly name: string;
    readonly referrer: string;
    readonly referrerField: string;
  },
): Entry {
  const { section, name, referrer, referrerField } = ref;
  const entry = merged.entries[section].get(name);
  if (entry) return entry;
  const known = [...merged.entries[section].keys()].map((n) => `"${n}"`).join(", ") || "none";
  throw new KubeconfigError(
    referrer,
    referrerField,
    `names ${ENTRY_KEY[section]} "${name}", which is not defined in ${
      merged.files.join(", ")
    } (known: ${known})`,
  );
}

function serverUrl(cluster: Entry): string {
  const server = requiredString(cluster, "server");
  let url: URL;
  try {
    url = new URL(server);
  } catch {
    throw new KubeconfigError(cluster.file, `${cluster.field}.server`, `"${server}" is not a URL`);
  }
  if (url.protocol !== "https:" && url.protocol !== "http:") {
    throw new KubeconfigError(
      cluster.file,
      `${cluster.field}.server`,
      `"${server}" must use https:// or http://`,
    );
  }
  if (cluster.value["insecure-skip-tls-verify"] === true) {
    throw unsupported(
      cluster,
      "insecure-skip-tls-verify",
      "Deno cannot skip TLS verification per client; add the server's CA as " +
        "certificate-authority(-data) instead",
    );
  }
  if (optionalString(cluster, "tls-server-name")) {
    throw unsupported(
      cluster,
      "tls-server-name",
      "Deno cannot override the TLS server name per client; use a server URL whose host matches " +
        "the certificate",
    );
  }
  return server.replace(/\/+$/, "");
}

function clientCertificateOf(user: Entry): ClientCertificate | undefined {
  const cert = pemOrFile(user, "client-certificate");
  const key = pemOrFile(user, "client-key");
  if (cert === undefined && key === undefined) return undefined;
  if (cert === undefined || key === undefined) {
    const missing = cert === undefined ? "client-certificate" : "client-key";
    throw new KubeconfigError(
      user.file,
      `${user.field}.${missing}`,
      `is missing (a client certificate needs both client-certificate and client-key, as data or file)`,
    );
  }
  return {
    cert: checkPem({ ...cert, entry: user }, "CERTIFICATE"),
    key: checkPem({ ...key, entry: user }, "PRIVATE KEY"),
  };
}

function credentialsOf(
  user: Entry,
  userName: string,
  cluster: NonNullable<ExecPluginConfig["cluster"]>,
): CredentialSource {
  if (user.value["auth-provider"] !== undefined) {
    throw unsupported(user, "auth-provider", "legacy auth providers are not supported; use exec");
  }
  for (const key of ["as", "as-groups", "as-uid", "as-user-extra"]) {
    if (user.value[key] !== undefined) {
      throw unsupported(user, key, "impersonation is not supported");
    }
  }
  const token = optionalString(user, "token");
  if (token) return staticCredentials(`Bearer ${token}`);
  const tokenFile = optionalString(user, "tokenFile");
  if (tokenFile) {
    return tokenFileCredentials(
      relativeTo(user.file, tokenFile),
      user.file,
      `${user.field}.tokenFile`,
    );
  }
  if (user.value["exec"] !== undefined) return execSource(user, userName, cluster);
  const username = optionalString(user, "username");
  if (username) {
    const password = optionalString(user, "password") ?? "";
    return staticCredentials(`Basic ${btoa(`${username}:${password}`)}`);
  }
  return NO_CREDENTIALS;
}

function execSource(
  user: Entry,
  userName: string,
  cluster: NonNullable<ExecPluginConfig["cluster"]>,
): CredentialSource {
  const field = `${user.field}.exec`;
  const exec = user.value["exec"];
  if (!isRecord(exec)) throw new KubeconfigError(user.file, field, "must be a mapping");
  const entry: Entry = { value: exec, file: user.file, field };
  const apiVersion = requiredString(entry, "apiVersion");
  const version = EXEC_API_VERSIONS.find((v) => v === apiVersion);
  if (version === undefined) {
    throw new KubeconfigError(
      user.file,
      `${field}.apiVersion`,
      `"${apiVersion}" is not supported (use ${EXEC_API_VERSIONS.join(" or ")})`,
    );
  }
  if (exec["interactiveMode"] === "Always") {
    throw unsupported(entry, "interactiveMode", "Always needs a terminal; this process has none");
  }
  const command = requiredString(entry, "command");
  const args = exec["args"] ?? [];
  if (!Array.isArray(args) || !args.every((a) => typeof a === "string")) {
    throw new KubeconfigError(user.file, `${field}.args`, "must be a list of strings");
  }
  const env: Record<string, string> = {};
  const envList = exec["env"] ?? [];
  if (!Array.isArray(envList)) {
    throw new KubeconfigError(user.file, `${field}.env`, "must be a list");
  }
  envList.forEach((item: unknown, index) => {
    if (!isRecord(item) || typeof item["name"] !== "string" || typeof item["value"] !== "string") {
      throw new KubeconfigError(
        user.file,
        `${field}.env[${index}]`,
        "must have string name and value",
      );
    }
    env[item["name"]] = item["value"];
  });
  const config: ExecPluginConfig = {
    // Like client-go: a command with a slash is a path relative to the kubeconfig's folder.
    command: command.includes("/") ? relativeTo(user.file, command) : command,
    args,
    env,
    apiVersion: version,
  };
  const installHint = optionalString(entry, "installHint");
  if (installHint) config.installHint = installHint;
  if (exec["provideClusterInfo"] === true) config.cluster = cluster;
  return new ExecCredentialSource(config, { file: user.file, field, user: userName });
}

/** Reads `<key>-data` (base64) or `<key>` (a file relative to the kubeconfig). */
function pemOrFile(entry: Entry, key: string): { pem: string; key: string } | undefined {
  const data = optionalString(entry, `${key}-data`);
  if (data) {
    try {
      const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
      return { pem: new TextDecoder().decode(bytes), key: `${key}-data` };
    } catch (error) {
      throw new KubeconfigError(entry.file, `${entry.field}.${key}-data`, "is not valid base64", {
        cause: error,
      });
    }
  }
  const file = optionalString(entry, key);
  if (!file) return undefined;
  const path = relativeTo(entry.file, file);
  try {
    return { pem: Deno.readTextFileSync(path), key };
  } catch (error) {
    throw new KubeconfigError(
      entry.file,
      `${entry.field}.${key}`,
      `cannot read "${path}": ${errorMessage(error)}`,
      { cause: error },
    );
  }
}

/** `pem` (read from `entry`'s `key`) when it holds a PEM block of `label`. */
function checkPem(
  source: { readonly pem: string; readonly key: string; readonly entry: Entry },
  label: "CERTIFICATE" | "PRIVATE KEY",
): string {
  const { pem, key, entry } = source;
  const field = `${entry.field}.${key}`;
  if (label === "PRIVATE KEY" && pem.includes("-----BEGIN ENCRYPTED PRIVATE KEY-----")) {
    throw new KubeconfigError(entry.file, field, "encrypted private keys are not supported");
  }
  const pattern = label === "CERTIFICATE"
    ? /-----BEGIN CERTIFICATE-----/
    : /-----BEGIN (RSA |EC )?PRIVATE KEY-----/;
  if (!pattern.test(pem)) {
    const kind = label === "CERTIFICATE" ? "certificate" : "PKCS#1, PKCS#8 or EC private key";
    throw new KubeconfigError(entry.file, field, `does not hold a PEM ${kind}`);
  }
  return pem;
}

function relativeTo(kubeconfigFile: string, path: string): string {
  return isAbsolute(path) ? path : resolve(dirname(kubeconfigFile), path);
}

function requiredString(entry: Entry, key: string): string {
  const value = optionalString(entry, key);
  if (value === undefined || value === "") {
    throw new KubeconfigError(entry.file, `${entry.field}.${key}`, "is missing");
  }
  return value;
}

function optionalString(entry: Entry, key: string): string | undefined {
  const value = entry.value[key];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== "string") {
    throw new KubeconfigError(
      entry.file,
      `${entry.field}.${key}`,
      `must be a string, got ${JSON.stringify(value)}`,
    );
  }
  return value;
}

function unsupported(entry: Entry, key: string, why: string): KubeconfigError {
  return new KubeconfigError(entry.file, `${entry.field}.${key}`, `is not supported: ${why}`);
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw new KubeconfigError(path, "", `cannot read kubeconfig: ${errorMessage(error)}`, {
      cause: error,
    });
  }
}
