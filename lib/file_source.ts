/**
 * Standalone source of desired state: a YAML file of `UnDyingProxy` objects (the same documents
 * `kubectl apply` takes), watched and re-applied whole on every change. An invalid file is rejected
 * as a whole and the last good configuration keeps running.
 * @module
 */
import { getLogger } from "@logtape/logtape";
import { loadAll, YAMLException } from "js-yaml";
import { parseForwarderSpec } from "./spec.ts";
import type { ForwarderSpec } from "./spec.ts";
import type { DesiredStateSource } from "./source.ts";
import { yamlSyntaxProblem } from "./yaml_error.ts";
import { errorMessage } from "./util/error_message.ts";

const log = getLogger(["undying-proxy", "config"]);

const API_VERSION = "proxy.sfact.io/v1alpha1";
const KIND = "UnDyingProxy";
const TOP_LEVEL_FIELDS = ["apiVersion", "kind", "metadata", "spec", "status"];
/** Kubernetes object names (DNS-1123 subdomain) and namespaces (DNS-1123 label). */
const OBJECT_NAME =
  /^(?=.{1,253}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const NAMESPACE = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;

/** One problem of a config file: which document (1-based), which field, the value, and why. */
export interface ConfigProblem {
  /** 1-based index of the YAML document; 0 when the file as a whole is unreadable. */
  readonly document: number;
  /** 1-based line and column in the file, for YAML syntax errors. */
  readonly line?: number;
  readonly column?: number;
  /** `namespace/name` of the object, when known. */
  readonly object?: string;
  readonly field: string;
  readonly value?: unknown;
  readonly reason: string;
}

/** An invalid config file; `message` lists every problem. */
export class ConfigError extends Error {
  override readonly name = "ConfigError";
  /** Every problem found. */
  readonly problems: readonly ConfigProblem[];

  /** @param path The file, named in the message. */
  constructor(path: string, problems: readonly ConfigProblem[], options?: ErrorOptions) {
    super(`Invalid config file ${path}: ${problems.map(describeProblem).join("; ")}`, options);
    this.problems = problems;
  }
}

/**
 * Parses a multi-document YAML stream of `UnDyingProxy` objects into the desired set.
 * Forwarder names are `namespace/name` (namespace `default` when absent, as kubectl does).
 * Empty documents are skipped.
 * @throws {ConfigError} listing every problem: YAML syntax, apiVersion/kind/metadata, spec fields,
 * duplicate names.
 */
export function parseConfig(path: string, text: string): ForwarderSpec[] {
  let documents: unknown[];
  try {
    documents = loadAll(text);
  } catch (error) {
    if (!(error instanceof YAMLException)) throw error;
    const { line, column, cause } = yamlSyntaxProblem(text, error);
    const document = documentAtLine(text, line - 1);
    const problem = { document, line, column, field: "YAML syntax", reason: cause };
    throw new ConfigError(path, [problem], { cause: error });
  }
  const problems: ConfigProblem[] = [];
  const specs: ForwarderSpec[] = [];
  const seen = new Map<string, number>();
  documents.forEach((document, index) => {
    if (document === null || document === undefined) return;
    const number = index + 1;
    const found: ConfigProblem[] = [];
    const name = checkObject(document, number, found);
    if (name !== undefined) {
      const first = seen.get(name);
      if (first !== undefined) {
        found.push({
          document: number,
          object: name,
          field: "metadata.name",
          value: name,
          reason: `duplicate of document ${first}`,
        });
      } else {
        seen.set(name, number);
      }
      const result = parseForwarderSpec(name, (document as Record<string, unknown>)["spec"]);
      if (result.ok) specs.push(result.spec);
      else found.push(...result.problems.map((p) => ({ ...p, document: number, object: name })));
    }
    problems.push(...found);
  });
  if (problems.length > 0) throw new ConfigError(path, problems);
  return specs;
}

/** Options of {@linkcode FileSource}. */
export interface FileSourceOptions {
  /** Quiet time after the last file-system event before the file is read again. @default 200 */
  readonly debounceMs?: number;
  /** Told the outcome of every load (the initial one included), e.g. for a metric. */
  readonly onLoad?: (result: "success" | "failure") => void;
}

/** Watches a config file and delivers its desired set on start and after every valid change. */
export class FileSource implements DesiredStateSource {
  readonly #path: string;
  readonly #debounceMs: number;
  readonly #onLoad: (result: "success" | "failure") => void;
  /** The file's text at the last read, valid or not: a read with the same text changes nothing. */
  #seen: string;
  /** Whether `#seen` is valid (it is the text `#desired` came from). */
  #seenValid = true;
  /** The outcome of the last load, for a read of unchanged text after a failed one. */
  #lastLoad: "success" | "failure" = "success";
  #desired: ForwarderSpec[];
  readonly #directories: string[];

  private constructor(
    path: string,
    text: string,
    desired: ForwarderSpec[],
    directories: string[],
    options: FileSourceOptions,
  ) {
    this.#directories = directories;
    this.#path = path;
    this.#seen = text;
    this.#desired = desired;
    this.#debounceMs = options.debounceMs ?? 200;
    const onLoad = options.onLoad ?? (() => {});
    this.#onLoad = (result) => {
      this.#lastLoad = result;
      onLoad(result);
    };
  }

  /**
   * Reads and validates the file once, so that a bad initial file stops the program before anything
   * starts.
   * @throws {ConfigError} when the file cannot be read or is invalid.
   */
  static async open(path: string, options: FileSourceOptions = {}): Promise<FileSource> {
    const onLoad = options.onLoad ?? (() => {});
    try {
      const text = await readConfig(path);
      const desired = parseConfig(path, text);
      const directories = await watchedDirectories(path);
      onLoad("success");
      log.info("Loaded {path}: {count} forwarder(s)", { path, count: desired.length });
      return new FileSource(path, text, desired, directories, options);
    } catch (error) {
      onLoad("failure");
      throw error;
    }
  }

  /** The file being watched. */
  get description(): string {
    return `file ${this.#path}`;
  }

  /**
   * Delivers the loaded desired set, then watches the file's directory (editors replace files by
   * rename, Kubernetes ConfigMap volumes swap a symlink) and re-applies the whole file after each
   * change. Resolves when `signal` aborts.
   * @throws {Error} when the directory can no longer be watched.
   */
  async run(
    apply: (desired: readonly ForwarderSpec[]) => void,
    signal: AbortSignal,
  ): Promise<void> {
    if (signal.aborted) return;
    const watcher = Deno.watchFs(this.#directories, { recursive: false });
    const stop = () => watcher.close();
    signal.addEventListener("abort", stop, { once: true });
    apply(this.#desired);
    let timer: ReturnType<typeof setTimeout> | undefined;
    // A change made between open() and the start of the watch has no event: read once more.
    let reloading = this.#reload(apply);
    try {
      for await (const event of watcher) {
        if (event.kind === "access") continue;
        clearTimeout(timer);
        timer = setTimeout(() => {
          reloading = reloading.then(() => this.#reload(apply));
        }, this.#debounceMs);
      }
    } finally {
      clearTimeout(timer);
      signal.removeEventListener("abort", stop);
      await reloading;
    }
    if (!signal.aborted) throw new Error(`Stopped watching ${this.#path}: its directory went away`);
  }

  async #reload(apply: (desired: readonly ForwarderSpec[]) => void): Promise<void> {
    let desired: ForwarderSpec[];
    try {
      const text = await readConfig(this.#path);
      if (text === this.#seen) {
        // Unchanged, e.g. restored after it was deleted: a valid file is a successful load again.
        if (this.#seenValid && this.#lastLoad === "failure") {
          this.#onLoad("success");
          log.info("Reloaded {path}: unchanged, valid again", { path: this.#path });
        }
        return;
      }
      this.#seen = text;
      this.#seenValid = false;
      desired = parseConfig(this.#path, text);
      this.#seenValid = true;
    } catch (error) {
      this.#onLoad("failure");
      log.error(
        "Rejected the change, the last good configuration keeps running: {reason}",
        {
          path: this.#path,
          reason: errorMessage(error),
          problems: error instanceof ConfigError ? error.problems : undefined,
        },
      );
      return;
    }
    const changes = changedNames(this.#desired, desired);
    this.#desired = desired;
    this.#onLoad("success");
    log.info(
      "Reloaded {path}: {count} forwarder(s); added {added}, changed {changed}, removed {removed}",
      { path: this.#path, count: desired.length, ...changes },
    );
    apply(desired);
  }
}

/**
 * The 1-based number of the document of a YAML stream that holds 0-based line `line`, counted as
 * `loadAll` counts documents: a `---` line starts a document (one at the very start, after only
 * comments, starts the first), `...` ends one, and content outside a document starts the next.
 */
function documentAtLine(text: string, line: number): number {
  let number = 0;
  let open = false;
  for (const row of text.split("\n").slice(0, line + 1)) {
    if (/^---(\s|$)/.test(row)) {
      number++;
      open = true;
    } else if (/^\.\.\.(\s|$)/.test(row)) {
      open = false;
    } else if (!open && /^(?!%)\s*[^\s#]/.test(row)) {
      number++;
      open = true;
    }
  }
  return Math.max(number, 1);
}

/** Names of the forwarders a reload adds, changes and removes. */
function changedNames(
  before: readonly ForwarderSpec[],
  after: readonly ForwarderSpec[],
): { added: string[]; changed: string[]; removed: string[] } {
  const old = new Map(before.map((spec) => [spec.name, JSON.stringify(spec)]));
  const names = new Set(after.map((spec) => spec.name));
  return {
    added: after.filter((spec) => !old.has(spec.name)).map((spec) => spec.name),
    changed: after.filter((spec) =>
      old.has(spec.name) && old.get(spec.name) !== JSON.stringify(spec)
    )
      .map((spec) => spec.name),
    removed: before.filter((spec) => !names.has(spec.name)).map((spec) => spec.name),
  };
}

/** The file's directory, and the directory of the file it links to when that is elsewhere. */
async function watchedDirectories(path: string): Promise<string[]> {
  const directories = [dirname(path)];
  const real = dirname(await Deno.realPath(path));
  if (real !== directories[0]) directories.push(real);
  return directories;
}

/**
 * Reads the config file as every load does.
 * @throws {ConfigError} when it cannot be read.
 */
export async function readConfig(path: string): Promise<string> {
  try {
    return await Deno.readTextFile(path);
  } catch (error) {
    const reason = `cannot be read: ${errorMessage(error)}`;
    throw new ConfigError(path, [{ document: 0, field: "(file)", reason }], { cause: error });
  }
}

/** Checks apiVersion, kind, metadata and top-level fields; returns `namespace/name` when usable. */
function checkObject(
  document: unknown,
  number: number,
  problems: ConfigProblem[],
): string | undefined {
  if (typeof document !== "object" || document === null || Array.isArray(document)) {
    problems.push({
      document: number,
      field: "(document)",
      value: document,
      reason: "must be an object",
    });
    return undefined;
  }
  const object = document as Record<string, unknown>;
  const problem = (field: string, value: unknown, reason: string) =>
    problems.push({
      document: number,
      field,
      value,
      reason: value === undefined ? `missing (${reason})` : reason,
    });
  if (object["apiVersion"] !== API_VERSION) {
    problem("apiVersion", object["apiVersion"], `must be ${API_VERSION}`);
  }
  if (object["kind"] !== KIND) problem("kind", object["kind"], `must be ${KIND}`);
  for (const key of Object.keys(object)) {
    if (!TOP_LEVEL_FIELDS.includes(key)) problem(key, object[key], "unknown field");
  }
  const metadata = object["metadata"];
  if (typeof metadata !== "object" || metadata === null || Array.isArray(metadata)) {
    problem("metadata", metadata, "must be an object with a name");
    return undefined;
  }
  const { name, namespace = "default" } = metadata as Record<string, unknown>;
  if (typeof name !== "string" || !OBJECT_NAME.test(name)) {
    problem(
      "metadata.name",
      name,
      "must be a Kubernetes object name (lowercase letters, digits, '-', '.')",
    );
    return undefined;
  }
  if (typeof namespace !== "string" || !NAMESPACE.test(namespace)) {
    problem("metadata.namespace", namespace, "must be a namespace name (a DNS label)");
    return undefined;
  }
  return `${namespace}/${name}`;
}

/** One problem as one line: document (and object, line, column), field, value and why. */
export function describeProblem(problem: ConfigProblem): string {
  const object = problem.object === undefined ? "" : ` (${problem.object})`;
  const position = problem.line === undefined
    ? ""
    : `, line ${problem.line}, column ${problem.column}`;
  const where = problem.document === 0 ? "" : `document ${problem.document}${object}${position}: `;
  // An absent field has no value to show: its reason says "missing".
  const value = problem.value === undefined ? "" : ` = ${truncate(JSON.stringify(problem.value))}`;
  return `${where}${problem.field}${value}: ${problem.reason}`;
}

function truncate(text: string): string {
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}

function dirname(path: string): string {
  const slash = path.lastIndexOf("/");
  if (slash < 0) return ".";
  return slash === 0 ? "/" : path.slice(0, slash);
}
