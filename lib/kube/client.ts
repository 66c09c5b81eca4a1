/**
 * A thin typed Kubernetes API client on `fetch` and one `Deno.createHttpClient` per cluster.
 *
 * Every call goes through {@linkcode KubeClient.request}: `redirect: "error"`, a per-request timeout,
 * every non-2xx answer turned into an {@linkcode ApiError}, and retries with jittered exponential
 * backoff on 429 (honouring `Retry-After`) for any request, and on 5xx, timeouts and connection
 * errors for idempotent ones.
 *
 * @module
 */
import { getLogger } from "@logtape/logtape";
import type { Status } from "kubernetes-types/meta/v1.d.ts";
import { ApiError, decodeErrorBody, parseRetryAfter } from "./api_error.ts";
import { sleep } from "../util/abortable_delay.ts";
import { Backoff } from "../util/backoff.ts";
import type { ClientCertificate, ClusterConfig, CredentialSource } from "./cluster.ts";
import { KubeconfigError } from "./kubeconfig_error.ts";
import { apiVersionOf, type KubeObject, type Resource, resourcePath } from "./resources.ts";
import { readWatchEvents, type WatchEvent } from "./watch_stream.ts";
import { errorMessage } from "../util/error_message.ts";

const logger = getLogger(["undying-proxy", "kube"]);

/** Longest `Retry-After` the client waits for. */
const MAX_RETRY_AFTER_MS = 60_000;

/** Options of {@linkcode KubeClient}. */
export interface KubeClientOptions {
  /** Per-request timeout (until the whole answer is read; until the headers for streams). @default 30000 */
  timeoutMs?: number;
  /** Attempts per request, the first included (1 disables retries). @default 5 */
  maxAttempts?: number;
  /** First retry delay. @default 200 */
  retryInitialMs?: number;
  /** Largest retry delay. @default 10000 */
  retryMaxMs?: number;
  /** `User-Agent` header. @default "undying-proxy" */
  userAgent?: string;
  /** Called once per HTTP attempt with its outcome (for `rest_client_requests_total`). */
  onResult?: (result: RequestResult) => void;
}

/**
 * The outcome of one HTTP attempt, labelled as client-go labels `rest_client_requests_total`:
 * `code` is the status code, or `<error>` when no answer arrived.
 */
export interface RequestResult {
  readonly method: string;
  readonly code: string;
  /** `host:port` of the API server. */
  readonly host: string;
}

/** A query parameter value; `undefined` leaves the parameter out. */
export type QueryValue = string | number | boolean | undefined;

/** Options of one raw API request. */
export interface RequestOptions {
  /** @default "GET" */
  method?: "GET" | "POST" | "PATCH" | "DELETE";
  /** Path below the server URL, e.g. `/api/v1/namespaces`. */
  path: string;
  /** Query parameters. */
  query?: Record<string, QueryValue>;
  /** Request body: a string is sent as is, anything else as JSON. */
  body?: unknown;
  /** Body content type. @default "application/json" */
  contentType?: string;
  /** Aborts the request (and a streamed body). */
  signal?: AbortSignal;
  /** Overrides the client's timeout. */
  timeoutMs?: number;
  /** Overrides the client's attempt count. */
  maxAttempts?: number;
  /** Whether 5xx/timeouts/connection errors may be retried. @default all but POST and JSON patch */
  idempotent?: boolean;
}

/** Options shared by the typed helpers. */
export interface CallOptions {
  /** Aborts the call. */
  signal?: AbortSignal;
  /** Overrides the client's timeout. */
  timeoutMs?: number;
}

/** Options of {@linkcode KubeClient.get}. */
export interface GetOptions extends CallOptions {
  /** Namespace (namespaced resources only). */
  namespace?: string;
  /** Read a subresource, e.g. `status`. */
  subresource?: "status";
}

/** Options of {@linkcode KubeClient.list} and {@linkcode KubeClient.listPages}. */
export interface ListOptions extends CallOptions {
  /** Namespace; omit for cluster-scoped resources or all namespaces. */
  namespace?: string;
  /** Label selector, e.g. `app=x`. */
  labelSelector?: string;
  /** Field selector, e.g. `metadata.name=x`. */
  fieldSelector?: string;
  /** Page size (the server may return fewer). @default 500 */
  limit?: number;
}

/** Options of create and patch. */
export interface WriteOptions extends CallOptions {
  /** Field manager recorded in `managedFields`. */
  fieldManager?: string;
}

/** The patch formats the API server accepts. */
export type PatchType = "json" | "merge" | "apply";

/** Content type of each {@linkcode PatchType}. */
export const PATCH_CONTENT_TYPES: Readonly<Record<PatchType, string>> = {
  json: "application/json-patch+json",
  merge: "application/merge-patch+json",
  apply: "application/apply-patch+yaml",
};

/** One JSON patch (RFC 6902) operation. */
export type JsonPatchOperation =
  | { op: "test" | "add" | "replace"; path: string; value: unknown }
  | { op: "remove"; path: string };

/** A request of {@linkcode KubeClient.patch}. */
export interface PatchRequest extends WriteOptions {
  /** The object's name. */
  name: string;
  type: PatchType;
  /** The patch document: JSON patch operations, a merge patch, or an apply configuration. */
  patch: unknown;
  /** Namespace (namespaced resources only). */
  namespace?: string;
  /** Patch a subresource, e.g. `status`. */
  subresource?: "status";
  /** Take over conflicting fields (server-side apply only). */
  force?: boolean;
}

/** Options of {@linkcode KubeClient.apply}. */
export interface ApplyOptions extends CallOptions {
  /** Field manager owning the applied fields (required by the API server). */
  fieldManager: string;
  /** Take over fields owned by other managers. */
  force?: boolean;
  /** Apply to a subresource, e.g. `status`. */
  subresource?: "status";
}

/** Options of {@linkcode KubeClient.delete}. */
export interface DeleteOptions extends CallOptions {
  /** Namespace (namespaced resources only). */
  namespace?: string;
}

/** Options of {@linkcode KubeClient.watch}. */
export interface WatchOptions {
  /** Namespace; omit for cluster-scoped resources or all namespaces. */
  namespace?: string;
  /** Label selector. */
  labelSelector?: string;
  /** Field selector. */
  fieldSelector?: string;
  /** Start after this resourceVersion (usually a list's). */
  resourceVersion?: string;
  /** Ask the server to end the watch after this long. */
  timeoutSeconds?: number;
  /** Ask for BOOKMARK events. @default true */
  allowWatchBookmarks?: boolean;
  /** Give up on a stream that sends nothing for this long. */
  idleTimeoutMs?: number;
  /** Ends the watch. */
  signal?: AbortSignal;
}

/** A complete (all pages) list answer. */
export interface ObjectList<T> {
  /** The objects, each with `apiVersion` and `kind` filled in. */
  items: T[];
  /** The list's resourceVersion, to watch from. */
  resourceVersion: string;
}

/** One page of a list answer. */
export interface ObjectListPage<T> extends ObjectList<T> {
  /** Token for the next page; absent on the last page. */
  continue?: string;
}

/** A client for one API server. */
export class KubeClient {
  /** The default namespace of the configuration. */
  readonly namespace: string;
  readonly #server: string;
  readonly #credentials: CredentialSource;
  readonly #config: ClusterConfig;
  readonly #httpClient: Deno.HttpClient;
  readonly #certClients = new Map<string, Deno.HttpClient>();
  readonly #timeoutMs: number;
  readonly #maxAttempts: number;
  readonly #retryInitialMs: number;
  readonly #retryMaxMs: number;
  readonly #userAgent: string;

  /**
   * Creates the TLS client for `config`.
   * @throws {RangeError} for bad options; {@linkcode KubeconfigError} when Deno refuses the
   * certificates or key.
   */
  readonly #onResult: (result: RequestResult) => void;

  constructor(config: ClusterConfig, options: KubeClientOptions = {}) {
    this.#timeoutMs = options.timeoutMs ?? 30_000;
    this.#maxAttempts = options.maxAttempts ?? 5;
    this.#retryInitialMs = options.retryInitialMs ?? 200;
    this.#retryMaxMs = options.retryMaxMs ?? 10_000;
    if (!(this.#timeoutMs > 0) || !Number.isInteger(this.#maxAttempts) || this.#maxAttempts < 1) {
      throw new RangeError(
        `Invalid KubeClient options: timeoutMs ${this.#timeoutMs} must be > 0 and maxAttempts ` +
          `${this.#maxAttempts} an integer >= 1`,
      );
    }
    // Fails early (RangeError) on inconsistent retry delays.
    new Backoff({ initialMs: this.#retryInitialMs, maxMs: this.#retryMaxMs });
    this.#userAgent = options.userAgent ?? "undying-proxy";
    this.#onResult = options.onResult ?? (() => {});
    this.#config = config;
    this.#server = config.server;
    this.#credentials = config.credentials;
    this.namespace = config.namespace;
    this.#httpClient = this.#createHttpClient(config.clientCertificate);
  }

  /** The API server URL. */
  get server(): string {
    return this.#server;
  }

  /** Sends one request and returns the decoded JSON answer. */
  request<T = unknown>(options: RequestOptions & { expect?: "json" }): Promise<T>;
  /** Sends one request and returns the response once its headers arrived (for streams). */
  request(options: RequestOptions & { expect: "stream" }): Promise<Response>;
  /** Sends one request, retrying where safe; every non-2xx answer throws an {@linkcode ApiError}. */
  async request<T>(
    options: RequestOptions & { expect?: "json" | "stream" },
  ): Promise<T | Response> {
    const method = options.method ?? "GET";
    const idempotent = options.idempotent ??
      (method !== "POST" && options.contentType !== PATCH_CONTENT_TYPES.json);
    const maxAttempts = options.maxAttempts ?? this.#maxAttempts;
    const backoff = new Backoff({
      initialMs: this.#retryInitialMs,
      maxMs: this.#retryMaxMs,
      resetAfterMs: Number.POSITIVE_INFINITY,
    });
    let refreshedCredentials = false;
    for (let attempt = 1;; attempt++) {
      try {
        const { response, text } = await this.#attempt(
          method,
          options,
          options.expect === "stream",
        );
        if (text === undefined) return response;
        return parseJson<T>(text, method, response);
      } catch (error) {
        if (!(error instanceof ApiError)) throw error;
        if (
          error.kind === "Unauthorized" && !refreshedCredentials && this.#credentials.invalidate()
        ) {
          refreshedCredentials = true;
          attempt--;
          continue;
        }
        if (attempt >= maxAttempts || !isRetryable(error, idempotent)) throw error;
        const delayMs = error.retryAfterSeconds !== undefined
          ? Math.min(error.retryAfterSeconds * 1000, MAX_RETRY_AFTER_MS)
          : backoff.next();
        logger.debug("Retrying {method} {path} in {delayMs} ms after: {error}", {
          method,
          path: options.path,
          delayMs,
          error: error.message,
        });
        await sleep(delayMs, options.signal);
      }
    }
  }

  /** Reads one object (or its `status` subresource). */
  async get<T extends KubeObject>(
    resource: Resource<T>,
    name: string,
    options: GetOptions = {},
  ): Promise<T> {
    const path = resourcePath(resource, { ...options, name });
    return decodeObject(resource, await this.request({ ...call(options), path }));
  }

  /** Yields the pages of a list, following `continue` tokens. */
  async *listPages<T extends KubeObject>(
    resource: Resource<T>,
    options: ListOptions = {},
  ): AsyncGenerator<ObjectListPage<T>> {
    const path = resourcePath(resource, { namespace: options.namespace });
    let token: string | undefined;
    do {
      const answer = await this.request<
        { metadata?: { resourceVersion?: string; continue?: string }; items?: unknown[] }
      >({
        ...call(options),
        path,
        query: {
          labelSelector: options.labelSelector,
          fieldSelector: options.fieldSelector,
          limit: options.limit ?? 500,
          continue: token,
        },
      });
      token = answer.metadata?.continue || undefined;
      const page: ObjectListPage<T> = {
        items: (answer.items ?? []).map((item) => decodeObject(resource, item)),
        resourceVersion: answer.metadata?.resourceVersion ?? "",
      };
      if (token) page.continue = token;
      yield page;
    } while (token);
  }

  /** Lists every object (all pages), with the list's resourceVersion. */
  async list<T extends KubeObject>(
    resource: Resource<T>,
    options: ListOptions = {},
  ): Promise<ObjectList<T>> {
    const result: ObjectList<T> = { items: [], resourceVersion: "" };
    for await (const page of this.listPages(resource, options)) {
      result.items.push(...page.items);
      result.resourceVersion = page.resourceVersion;
    }
    return result;
  }

  /**
   * Creates an object in `object.metadata.namespace`.
   * @throws {TypeError} when a namespaced object has no namespace.
   */
  async create<T extends KubeObject>(
    resource: Resource<T>,
    object: T,
    options: WriteOptions = {},
  ): Promise<T> {
    const namespace = object.metadata?.namespace;
    if (resource.namespaced && !namespace) {
      throw new TypeError(`Cannot create a ${resource.kind} without metadata.namespace`);
    }
    const path = resourcePath(resource, { namespace: namespace || undefined });
    return decodeObject(
      resource,
      await this.request({
        ...call(options),
        method: "POST",
        path,
        query: writeQuery(options),
        body: withType(resource, object),
      }),
    );
  }

  /** Patches an object (or its `status`) with a JSON, merge or server-side apply patch. */
  async patch<T extends KubeObject>(resource: Resource<T>, request: PatchRequest): Promise<T> {
    const { name, type, patch, ...options } = request;
    if (type === "apply" && !options.fieldManager) {
      throw new TypeError(
        `A server-side apply patch of ${resource.kind} "${name}" needs a fieldManager`,
      );
    }
    if (type !== "apply" && options.force !== undefined) {
      throw new TypeError(`force is only valid for apply patches, not "${type}"`);
    }
    return decodeObject(
      resource,
      await this.request({
        ...call(options),
        method: "PATCH",
        path: resourcePath(resource, {
          namespace: options.namespace,
          name,
          subresource: options.subresource,
        }),
        query: { ...writeQuery(options), force: options.force },
        body: patch,
        contentType: PATCH_CONTENT_TYPES[type],
      }),
    );
  }

  /** Server-side applies `object` (name and namespace from its metadata) as `fieldManager`. */
  apply<T extends KubeObject>(
    resource: Resource<T>,
    object: T,
    options: ApplyOptions,
  ): Promise<T> {
    const { namespace, name } = addressOf(object);
    return this.patch(resource, {
      name,
      type: "apply",
      patch: withType(resource, object),
      ...options,
      ...(namespace !== undefined ? { namespace } : {}),
    });
  }

  /**
   * Deletes an object.
   * @returns the object as the server returned it (with `deletionTimestamp` while finalizers are
   * pending), or `undefined` when the server answered with a `Status`.
   */
  async delete<T extends KubeObject>(
    resource: Resource<T>,
    name: string,
    options: DeleteOptions = {},
  ): Promise<T | undefined> {
    const answer = await this.request<KubeObject | Status>({
      ...call(options),
      method: "DELETE",
      path: resourcePath(resource, { namespace: options.namespace, name }),
    });
    return answer.kind === "Status" ? undefined : decodeObject(resource, answer);
  }

  /**
   * Opens one watch connection and yields its events until the server ends it. `ERROR` events are
   * thrown as {@linkcode ApiError}s (kind `Gone` for 410). No retries: see `Reflector` for those.
   */
  async *watch<T extends KubeObject>(
    resource: Resource<T>,
    options: WatchOptions = {},
  ): AsyncGenerator<WatchEvent<T>> {
    const path = resourcePath(resource, { namespace: options.namespace });
    const response = await this.request({
      path,
      query: {
        watch: true,
        resourceVersion: options.resourceVersion,
        allowWatchBookmarks: options.allowWatchBookmarks ?? true,
        timeoutSeconds: options.timeoutSeconds,
        labelSelector: options.labelSelector,
        fieldSelector: options.fieldSelector,
      },
      maxAttempts: 1,
      expect: "stream",
      ...(options.signal ? { signal: options.signal } : {}),
    });
    if (response.body === null) return;
    yield* readWatchEvents(response.body, {
      method: "GET",
      path,
      decode: (value) => decodeObject(resource, value),
      ...(options.idleTimeoutMs !== undefined ? { idleTimeoutMs: options.idleTimeoutMs } : {}),
      ...(options.signal ? { signal: options.signal } : {}),
    });
  }

  /** Closes the TLS clients (and with them idle connections). */
  close(): void {
    this.#httpClient.close();
    for (const client of this.#certClients.values()) client.close();
    this.#certClients.clear();
  }

  /** Same as {@linkcode KubeClient.close}. */
  [Symbol.dispose](): void {
    this.close();
  }

  /** One try: the response once its headers arrived (streams) or with its whole text. */
  async #attempt(
    method: string,
    options: RequestOptions,
    stream: boolean,
  ): Promise<{ response: Response; text?: string }> {
    const url = new URL(this.#server + options.path);
    for (const [key, value] of Object.entries(options.query ?? {})) {
      if (value !== undefined) url.searchParams.set(key, String(value));
    }
    const shownPath = url.pathname + url.search;
    const timeout = new AbortController();
    const signal = options.signal
      ? AbortSignal.any([options.signal, timeout.signal])
      : timeout.signal;
    const timeoutMs = options.timeoutMs ?? this.#timeoutMs;
    const timer = setTimeout(() => timeout.abort(), timeoutMs);
    const failed = (error: unknown) =>
      this.#transportError(error, {
        callerSignal: options.signal,
        timeoutSignal: timeout.signal,
        method,
        path: shownPath,
        timeoutMs,
      });
    try {
      const credentials = await this.#credentials.get();
      const headers = new Headers({ "Accept": "application/json", "User-Agent": this.#userAgent });
      if (credentials.authorization) headers.set("Authorization", credentials.authorization);
      let body: string | undefined;
      if (options.body !== undefined) {
        body = typeof options.body === "string" ? options.body : JSON.stringify(options.body);
        headers.set("Content-Type", options.contentType ?? "application/json");
      }
      let response: Response;
      let text: string;
      let answered = false;
      try {
        response = await fetch(url, {
          method,
          headers,
          ...(body !== undefined ? { body } : {}),
          redirect: "error",
          signal,
          client: this.#httpClientFor(credentials.clientCertificate),
        });
        answered = true;
        this.#onResult({ method, code: String(response.status), host: url.host });
        if (stream && response.ok) return { response };
        text = await response.text();
      } catch (error) {
        if (!answered) this.#onResult({ method, code: "<error>", host: url.host });
        throw failed(error);
      }
      if (response.ok) return { response, text };
      throw new ApiError({
        status: response.status,
        method,
        path: shownPath,
        ...decodeErrorBody(text),
        ...retryAfter(response),
      });
    } finally {
      clearTimeout(timer);
    }
  }

  /** The error to throw for a request that got no answer: the caller's abort, a timeout, or the network. */
  #transportError(
    error: unknown,
    request: {
      readonly callerSignal: AbortSignal | undefined;
      readonly timeoutSignal: AbortSignal;
      readonly method: string;
      readonly path: string;
      readonly timeoutMs: number;
    },
  ): unknown {
    const { callerSignal, timeoutSignal, method, path, timeoutMs } = request;
    if (callerSignal?.aborted) return callerSignal.reason;
    if (timeoutSignal.aborted) {
      return new ApiError({
        status: 0,
        kind: "Timeout",
        method,
        path,
        text: `no complete answer from ${this.#server} within ${timeoutMs} ms`,
      }, { cause: error });
    }
    return new ApiError({
      status: 0,
      kind: "Network",
      method,
      path,
      text: `cannot reach ${this.#server}: ${errorMessage(error)}`,
    }, { cause: error });
  }

  #httpClientFor(certificate: ClientCertificate | undefined): Deno.HttpClient {
    if (certificate === undefined) return this.#httpClient;
    const key = certificate.cert + certificate.key;
    let client = this.#certClients.get(key);
    if (client === undefined) {
      // An exec plugin returned a (new) client certificate: older clients are kept for requests in
      // flight and closed with the KubeClient.
      client = this.#createHttpClient(certificate);
      this.#certClients.set(key, client);
    }
    return client;
  }

  #createHttpClient(certificate: ClientCertificate | undefined): Deno.HttpClient {
    try {
      return Deno.createHttpClient({
        caCerts: this.#config.caCerts,
        ...(certificate ? { cert: certificate.cert, key: certificate.key } : {}),
        ...(this.#config.proxyUrl ? { proxy: { url: this.#config.proxyUrl } } : {}),
      });
    } catch (error) {
      throw new KubeconfigError(
        this.#config.source,
        certificate ? "client certificate/key" : "certificate-authority",
        `Deno cannot use the TLS material: ${errorMessage(error)}`,
        { cause: error },
      );
    }
  }
}

function parseJson<T>(text: string, method: string, response: Response): T {
  try {
    return JSON.parse(text) as T;
  } catch (error) {
    throw new ApiError({
      status: response.status,
      kind: "Unknown",
      method,
      path: new URL(response.url).pathname,
      text: `answer is not JSON: ${text}`,
    }, { cause: error });
  }
}

function isRetryable(error: ApiError, idempotent: boolean): boolean {
  if (error.kind === "TooManyRequests") return true; // the server did not process it
  return idempotent &&
    (error.kind === "ServerError" || error.kind === "Timeout" || error.kind === "Network");
}

function retryAfter(response: Response): { retryAfterSeconds?: number } {
  const seconds = parseRetryAfter(response.headers.get("retry-after"));
  return seconds === undefined ? {} : { retryAfterSeconds: seconds };
}

function call(options: CallOptions): Pick<RequestOptions, "signal" | "timeoutMs"> {
  return {
    ...(options.signal ? { signal: options.signal } : {}),
    ...(options.timeoutMs !== undefined ? { timeoutMs: options.timeoutMs } : {}),
  };
}

function writeQuery(options: WriteOptions): Record<string, QueryValue> {
  return { fieldManager: options.fieldManager };
}

function addressOf(object: KubeObject): { namespace?: string; name: string } {
  const name = object.metadata?.name;
  if (!name) throw new TypeError("The object has no metadata.name");
  const namespace = object.metadata?.namespace;
  return namespace ? { namespace, name } : { name };
}

function withType<T extends KubeObject>(resource: Resource<T>, object: T): T {
  return { ...object, apiVersion: apiVersionOf(resource), kind: resource.kind };
}

/**
 * Checks that an answer is an object of the resource and fills in `apiVersion` and `kind` (list
 * items of built-in types come without them).
 * @throws {ApiError} of kind `Unknown` when the answer is not an object with metadata.
 */
export function decodeObject<T extends KubeObject>(resource: Resource<T>, value: unknown): T {
  const object = value as KubeObject | null;
  if (typeof object !== "object" || object === null || typeof object.metadata !== "object") {
    throw new ApiError({
      status: 0,
      kind: "Unknown",
      method: "decode",
      path: resource.plural,
      text: `expected a ${resource.kind}, got ${JSON.stringify(value)?.slice(0, 256)}`,
    });
  }
  return {
    ...object,
    apiVersion: object.apiVersion ?? apiVersionOf(resource),
    kind: object.kind ?? resource.kind,
  } as T;
}
