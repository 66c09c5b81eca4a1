/**
 * Kubernetes authentication and authorization of scrapes (`--metrics-authed`), like the Go
 * operator's controller-runtime `WithAuthenticationAndAuthorization`: the request's bearer token
 * goes to a TokenReview, the user it names to a SubjectAccessReview for the non-resource URL (e.g.
 * `get /metrics`). Decisions are cached briefly so that scrapes do not load the API server.
 * @module
 */
import { getLogger } from "@logtape/logtape";
import type { TokenReview } from "kubernetes-types/authentication/v1.d.ts";
import type { SubjectAccessReview } from "kubernetes-types/authorization/v1.d.ts";
import { ExpiringCache } from "./expiring_cache.ts";
import { KubeClient } from "./kube/client.ts";
import { loadClusterConfig } from "./kube/cluster_config.ts";
import { defineResource } from "./kube/resources.ts";
import { errorMessage } from "./util/error_message.ts";

const log = getLogger(["undying-proxy", "http"]);

/** `authentication.k8s.io/v1` TokenReviews (create only). */
export const TOKEN_REVIEWS = defineResource<TokenReview>({
  group: "authentication.k8s.io",
  version: "v1",
  plural: "tokenreviews",
  kind: "TokenReview",
  namespaced: false,
});

/** `authorization.k8s.io/v1` SubjectAccessReviews (create only). */
export const SUBJECT_ACCESS_REVIEWS = defineResource<SubjectAccessReview>({
  group: "authorization.k8s.io",
  version: "v1",
  plural: "subjectaccessreviews",
  kind: "SubjectAccessReview",
  namespaced: false,
});

/** The part of {@linkcode KubeClient} the reviews use; closed with the authorizer. */
export type ReviewClient = Pick<KubeClient, "create" | "close">;

/** Options of {@linkcode MetricsAuthorizer}. */
export interface MetricsAuthOptions {
  /** How long an allowed token is trusted without asking again. @default 60000 */
  readonly allowTtlMs?: number;
  /** How long a refused token (401 or 403) stays refused without asking again. @default 10000 */
  readonly denyTtlMs?: number;
  /** Most decisions cached (distinct token, verb and path). @default 1000 */
  readonly maxEntries?: number;
  /** Timeout of each review request. @default 10000 */
  readonly timeoutMs?: number;
  /** Clock for the cache. @default Date.now */
  readonly now?: () => number;
}

/** A request handler, as `startHttpServer` takes it. */
export type Handler = (request: Request) => Response | Promise<Response>;

interface Decision {
  readonly status: 200 | 401 | 403;
  /** Who the token belongs to ("" when it was not authenticated). */
  readonly user: string;
  /** Why a token is refused (for the log and the answer). */
  readonly reason: string;
}

/** Lets a request through only with a token that the API server authenticates and authorizes. */
export class MetricsAuthorizer implements Disposable {
  readonly #client: ReviewClient;
  readonly #cache: ExpiringCache<string, Decision>;
  readonly #allowTtlMs: number;
  readonly #denyTtlMs: number;
  readonly #timeoutMs: number;

  /** Takes over `client`: disposing the authorizer closes it. */
  constructor(client: ReviewClient, options: MetricsAuthOptions = {}) {
    this.#client = client;
    this.#allowTtlMs = options.allowTtlMs ?? 60_000;
    this.#denyTtlMs = options.denyTtlMs ?? 10_000;
    this.#timeoutMs = options.timeoutMs ?? 10_000;
    this.#cache = new ExpiringCache({
      maxEntries: options.maxEntries ?? 1000,
      ...(options.now !== undefined && { now: options.now }),
    });
  }

  /** `handler` behind the check: 401 without a valid token, 403 when not allowed. */
  protect(handler: Handler): Handler {
    return async (request) => (await this.check(request)) ?? await handler(request);
  }

  /**
   * Checks one request's `Authorization: Bearer` token for its method and path.
   * @returns `undefined` when the request may go through, else the answer to send: 401, 403, or
   * 500 when the API server cannot be asked.
   */
  async check(request: Request): Promise<Response | undefined> {
    const token = bearerToken(request.headers.get("authorization"));
    if (token === undefined) {
      return refusal({ status: 401, user: "", reason: "no bearer token in Authorization" });
    }
    const path = new URL(request.url).pathname;
    const verb = request.method.toLowerCase();
    let decision: Decision;
    try {
      decision = await this.#cache.get(
        `${await sha256(token)} ${verb} ${path}`,
        () => this.#review(token, verb, path),
        (result) => result.status === 200 ? this.#allowTtlMs : this.#denyTtlMs,
      );
    } catch (error) {
      log.warn("Cannot check a scrape's token with the API server: {reason}", {
        reason: errorMessage(error),
        error,
      });
      return new Response("internal error: the token could not be checked\n", { status: 500 });
    }
    if (decision.status === 200) return undefined;
    log.debug("Refused a scrape of {path} ({status}): {reason}", { path, ...decision });
    return refusal(decision);
  }

  /** Closes the API client. */
  [Symbol.dispose](): void {
    this.#client.close();
  }

  async #review(token: string, verb: string, path: string): Promise<Decision> {
    const options = { timeoutMs: this.#timeoutMs };
    const review = await this.#client.create(
      TOKEN_REVIEWS,
      { metadata: {}, spec: { token } },
      options,
    );
    const authenticated = review.status?.authenticated === true;
    const user = review.status?.user ?? {};
    if (!authenticated || !user.username) {
      const why = review.status?.error ? `: ${review.status.error}` : "";
      return { status: 401, user: "", reason: `the token is not valid${why}` };
    }
    const access = await this.#client.create(SUBJECT_ACCESS_REVIEWS, {
      metadata: {},
      spec: {
        user: user.username,
        ...(user.uid !== undefined && { uid: user.uid }),
        ...(user.groups !== undefined && { groups: user.groups }),
        ...(user.extra !== undefined && { extra: user.extra }),
        nonResourceAttributes: { path, verb },
      },
    }, options);
    if (access.status?.allowed === true) return { status: 200, user: user.username, reason: "" };
    const why = access.status?.reason || access.status?.evaluationError || "no RBAC rule allows it";
    return {
      status: 403,
      user: user.username,
      reason: `user "${user.username}" may not ${verb} ${path}: ${why}`,
    };
  }
}

/**
 * Creates an authorizer with its own API client, configured like operator mode (`--kubeconfig`,
 * `$KUBECONFIG`, in-cluster, `~/.kube/config`).
 * @throws {Error} (a `KubeconfigError`) when no usable cluster configuration is found.
 */
export async function openMetricsAuthorizer(
  flags: { readonly kubeconfig?: string | undefined },
  options: MetricsAuthOptions = {},
): Promise<MetricsAuthorizer> {
  const config = await loadClusterConfig(
    flags.kubeconfig !== undefined ? { kubeconfig: flags.kubeconfig } : {},
  );
  return new MetricsAuthorizer(new KubeClient(config), options);
}

function bearerToken(header: string | null): string | undefined {
  const match = /^Bearer\s+(\S+)\s*$/i.exec(header ?? "");
  return match?.[1];
}

function refusal(decision: Decision): Response {
  const text = decision.status === 401 ? "Unauthorized" : "Forbidden";
  return new Response(`${text}: ${decision.reason}\n`, {
    status: decision.status,
    headers: decision.status === 401 ? { "www-authenticate": 'Bearer realm="metrics"' } : {},
  });
}

async function sha256(text: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
  return Array.from(new Uint8Array(digest), (byte) => byte.toString(16).padStart(2, "0")).join("");
}
