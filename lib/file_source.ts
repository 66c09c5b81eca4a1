/**
 * Standalone source of desired state: a YAML file of `UnDyingProxy` objects (the same documents
 * `kubectl apply` takes), watched and re-applied whole on every change. An invalid file is rejected
 * as a whole and the last good configuration keeps running.
 * @module
 */
import { getLogger } from "@logtape/logtape";
import { loadAll, YAMLException } from "js-yaml";
import { abortableDelay } from "./util/abortable_delay.ts";
import { parseForwarderSpec } from "./spec.ts";
import type { ForwarderSpec } from "./spec.ts";
import type { DesiredStateSource } from "./source.ts";
import { yamlSyntaxProblem } from "./yaml_error.ts";
import { errorMessage } from "./util/error_message.ts";

const log = getLogger(["undying-proxy", "config"]);

const API_VERSION = "proxy.sfact.io/v1alpha1";
const KIND = "UnDyingProxy";
const TOP_LEVEL_FIELDS = ["apiVersion", "kind", "metadata", "spec", "status"];
/**
 * Aliases (`*name`) per YAML document at most: enough to share a few settings, too few for an
 * alias bomb ("billion laughs": nested aliases that expand a 2 KB file into gigabytes).
 */
export const MAX_YAML_ALIASES = 20;
/** Default largest config file read; larger files are refused before parsing. */
export const DEFAULT_CONFIG_MAX_BYTES = 4 * 1024 * 1024;
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

/** Problems a {@linkcode ConfigError} message spells out; the rest are counted. */
export const MAX_REPORTED_PROBLEMS = 10;

/**
 * An invalid config file; `message` lists the first {@linkcode MAX_REPORTED_PROBLEMS} problems and
 * counts the rest, so that a huge invalid file does not flood the log.
 */
export class ConfigError extends Error {
  override readonly name = "ConfigError";
  /** Every problem found. */
  readonly problems: readonly ConfigProblem[];

  /** @param path The file, named in the message. */
  constructor(path: string, problems: readonly ConfigProblem[], options?: ErrorOptions) {
    const shown = problems.slice(0, MAX_REPORTED_PROBLEMS).map(describeProblem);
    const more = problems.length - shown.length;
    if (more > 0) shown.push(`and ${more} more problem(s)`);
    super(`Invalid config file ${path}: ${shown.join("; ")}`, options);
    this.problems = problems;
  }

  /** The first problems, for a structured log record of bounded size. */
  get firstProblems(): readonly ConfigProblem[] {
    return this.problems.slice(0, MAX_REPORTED_PROBLEMS);
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
    documents = loadAll(text, { maxAliases: MAX_YAML_ALIASES });
  } catch (error) {
    if (!(error instanceof YAMLException)) throw error;
    const { line, column, cause } = yamlSyntaxProblem(text, error);
    const document = documentAtLine(text, line - 1);
    const aliases = error.message.includes("maxAliases");
    const problem = {
      document,
      line,
      column,
      field: aliases ? "YAML aliases" : "YAML syntax",
      reason: aliases
        ? `more than ${MAX_YAML_ALIASES} aliases (*name) in one document: refused, so that a ` +
          "small file cannot expand into gigabytes"
        : cause,
    };
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
  /**
   * Parses the file's text (e.g. off the main thread: `parseConfigOffThread`).
   * @default parseConfig, on this thread
   */
  readonly parse?: (path: string, text: string) => Promise<ForwarderSpec[]>;
  /** Larger files are refused before they are parsed. @default DEFAULT_CONFIG_MAX_BYTES */
  readonly maxBytes?: number;
  /**
   * Apply a reload that removes every forwarder (empty file, no object left); else such a reload is
   * rejected as a likely truncated or half-written file. @default false
   */
  readonly allowEmpty?: boolean;
  /** How often the watched directories are checked for being replaced. @default 1000 */
  readonly watchCheckMs?: number;
  /** Told when the watch was lost (the directory removed or re-created), e.g. for a metric. */
  readonly onWatchLost?: () => void;
  /** Told the outcome of every load (the initial one included), e.g. for a metric. */
  readonly onLoad?: (result: "success" | "failure") => void;
}

/** Watches a config file and delivers its desired set on start and after every valid change. */
export class FileSource implements DesiredStateSource {
  readonly #path: string;
  readonly #debounceMs: number;
  readonly #maxBytes: number;
  readonly #parse: (path: string, text: string) => Promise<ForwarderSpec[]>;
  readonly #onLoad: (result: "success" | "failure") => void;
  /** The file's text at the last read, valid or not: a read with the same text changes nothing. */
  #seen: string;
  /** Whether `#seen` is valid (it is the text `#desired` came from). */
  #seenValid = true;
  /** The outcome of the last load, for a read of unchanged text after a failed one. */
  #lastLoad: "success" | "failure" = "success";
  #desired: ForwarderSpec[];
  #directories: string[];
  readonly #watchCheckMs: number;
  readonly #allowEmpty: boolean;
  readonly #onWatchLost: () => void;
  #watchCount = 0;

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
    this.#maxBytes = options.maxBytes ?? DEFAULT_CONFIG_MAX_BYTES;
    this.#parse = options.parse ?? parseHere;
    this.#watchCheckMs = options.watchCheckMs ?? 1000;
    this.#allowEmpty = options.allowEmpty ?? false;
    this.#onWatchLost = options.onWatchLost ?? (() => {});
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
      const text = await readConfig(path, options.maxBytes ?? DEFAULT_CONFIG_MAX_BYTES);
      const desired = await (options.parse ?? parseHere)(path, text);
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
   * change. A watch that is lost (the directory removed or re-created) is logged, counted
   * (`onWatchLost`) and set up again once the directory exists, and the file is read again then.
   * Resolves when `signal` aborts.
   */
  async run(
    apply: (desired: readonly ForwarderSpec[]) => void,
    signal: AbortSignal,
  ): Promise<void> {
    if (signal.aborted) return;
    apply(this.#desired);
    let reloading = Promise.resolve();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const reloadSoon = () => {
      clearTimeout(timer);
      timer = setTimeout(() => {
        reloading = reloading.then(() => this.#reload(apply));
      }, this.#debounceMs);
    };
    try {
      while (!signal.aborted) {
        const watched = await this.#watch(signal);
        if (watched === undefined) break;
        // A change made before this watch started has no event: read once more.
        reloadSoon();
        await watched.events(reloadSoon);
        if (signal.aborted) break;
        this.#onWatchLost();
        log.warn("Lost the watch of {directories} (removed or re-created); watching again", {
          path: this.#path,
          directories: this.#directories,
        });
      }
    } finally {
      clearTimeout(timer);
      await reloading;
    }
  }

  /**
   * Starts a watch of the file's directories, waiting (polling) while they do not exist. The watch
   * ends by itself when a watched directory is replaced. Undefined when `signal` aborts first.
   */
  async #watch(
    signal: AbortSignal,
  ): Promise<{ events: (onChange: () => void) => Promise<void> } | undefined> {
    // The first watch uses the directories found at open(); later ones look again (a ConfigMap
    // volume may point its symlink elsewhere by now).
    let lookAgain = this.#watchCount++ > 0;
    for (;;) {
      if (signal.aborted) return undefined;
      try {
        const directories = lookAgain ? await watchedDirectories(this.#path) : this.#directories;
        const identities = await Promise.all(directories.map(directoryIdentity));
        const watcher = Deno.watchFs(directories, { recursive: false });
        this.#directories = directories;
        return { events: (onChange) => this.#events(watcher, identities, onChange, signal) };
      } catch {
        // The directory (or the file) is not there (yet): look again shortly.
        lookAgain = true;
        await abortableDelay(this.#watchCheckMs, signal);
      }
    }
  }

  /** Passes the watcher's events on until `signal` aborts or a watched directory is replaced. */
  async #events(
    watcher: Deno.FsWatcher,
    identities: readonly string[],
    onChange: () => void,
    signal: AbortSignal,
  ): Promise<void> {
    const stop = () => watcher.close();
    signal.addEventListener("abort", stop, { once: true });
    // inotify keeps watching a removed directory's inode, without events: compare identities.
    const check = setInterval(async () => {
      const now = await Promise.all(this.#directories.map(directoryIdentity));
      if (now.some((identity, index) => identity !== identities[index])) stop();
    }, this.#watchCheckMs);
    try {
      for await (const event of watcher) {
        // A watched directory itself removed (inotify's IN_DELETE_SELF): the watch is gone.
        if (event.kind === "remove" && event.paths.some((p) => this.#directories.includes(p))) {
          stop(); // ends this loop (a `break` can hang in the iterator's return())
          continue;
        }
        if (event.kind !== "access") onChange();
      }
    } finally {
      clearInterval(check);
      signal.removeEventListener("abort", stop);
      stop();
    }
  }

  async #reload(apply: (desired: readonly ForwarderSpec[]) => void): Promise<void> {
    let desired: ForwarderSpec[];
    try {
      const text = await readConfig(this.#path, this.#maxBytes);
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
      desired = await this.#parse(this.#path, text);
      if (desired.length === 0 && this.#desired.length > 0 && !this.#allowEmpty) {
        const reason =
          `holds no UnDyingProxy object now, which would remove all ${this.#desired.length} ` +
          "forwarder(s): rejected as a likely truncated or half-written file (--config-allow-empty " +
          "applies such a change)";
        throw new ConfigError(this.#path, [{ document: 0, field: "(file)", reason }]);
      }
      this.#seenValid = true;
    } catch (error) {
      this.#onLoad("failure");
      log.error(
        "Rejected the change, the last good configuration keeps running: {reason}",
        {
          path: this.#path,
          reason: errorMessage(error),
          problems: error instanceof ConfigError ? error.firstProblems : undefined,
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

/** {@linkcode parseConfig} on this thread, as the default `parse` of a FileSource. */
function parseHere(path: string, text: string): Promise<ForwarderSpec[]> {
  try {
    return Promise.resolve(parseConfig(path, text));
  } catch (error) {
    return Promise.reject(error);
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

/**
 * A directory's device, inode and birth time: another value once it was removed and created again
 * (a new directory often gets the inode number just freed).
 */
async function directoryIdentity(path: string): Promise<string> {
  try {
    const info = await Deno.stat(path);
    return `${info.dev}:${info.ino}:${info.birthtime?.getTime()}`;
  } catch {
    return "gone";
  }
}

/** The file's directory, and the directory of the file it links to when that is elsewhere. */
async function watchedDirectories(path: string): Promise<string[]> {
  const directories = [dirname(path)];
  const real = dirname(await Deno.realPath(path));
  if (real !== directories[0]) directories.push(real);
  return directories;
}

/**
 * Reads the config file as every load does; a file larger than `maxBytes` is refused without
 * reading (or parsing) it.
 * @throws {ConfigError} when it cannot be read or is too large.
 */
export async function readConfig(
  path: string,
  maxBytes: number = DEFAULT_CONFIG_MAX_BYTES,
): Promise<string> {
  let bytes: Uint8Array;
  try {
    using file = await Deno.open(path);
    const { size } = await file.stat();
    if (size > maxBytes) {
      const reason = `is ${size} bytes, more than --config-max-bytes=${maxBytes}; refused unread`;
      throw new ConfigError(path, [{ document: 0, field: "(file)", reason }]);
    }
    // Room for one byte more than stat() said tells a file that grew since apart.
    bytes = new Uint8Array(size + 1);
    let length = 0;
    for (;;) {
      if (length === bytes.length) {
        const grown = new Uint8Array(Math.min(2 * bytes.length, maxBytes + 1));
        grown.set(bytes);
        bytes = grown;
      }
      const n = await file.read(bytes.subarray(length));
      if (n === null) break;
      length += n;
      if (length > maxBytes) {
        const reason = `is more than --config-max-bytes=${maxBytes} bytes; refused`;
        throw new ConfigError(path, [{ document: 0, field: "(file)", reason }]);
      }
    }
    bytes = bytes.subarray(0, length);
  } catch (error) {
    if (error instanceof ConfigError) throw error;
    const reason = `cannot be read: ${errorMessage(error)}`;
    throw new ConfigError(path, [{ document: 0, field: "(file)", reason }], { cause: error });
  }
  return new TextDecoder().decode(bytes);
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
  const value = problem.value === undefined ? "" : ` = ${truncate(showValue(problem.value))}`;
  return `${where}${problem.field}${value}: ${problem.reason}`;
}

/** A value as the user wrote it in YAML: JSON, except the numbers JSON cannot show (`.inf`, `.nan`). */
export function showValue(value: unknown): string {
  if (typeof value === "number" && !Number.isFinite(value)) {
    return Number.isNaN(value) ? ".nan" : value > 0 ? ".inf" : "-.inf";
  }
  try {
    return JSON.stringify(
      value,
      (_, v) => typeof v === "number" && !Number.isFinite(v) ? showValue(v) : v,
    ) ?? "undefined";
  } catch {
    return "(a value that refers to itself)";
  }
}

function truncate(text: string): string {
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}

function dirname(path: string): string {
  const slash = path.lastIndexOf("/");
  if (slash < 0) return ".";
  return slash === 0 ? "/" : path.slice(0, slash);
}
