/**
 * The one error type of the Kubernetes client: every non-2xx answer, watch `ERROR` event, timeout and
 * connection failure becomes an {@linkcode ApiError} with a bounded {@linkcode ApiErrorKind}.
 *
 * @module
 */
import type { Status, StatusCause } from "kubernetes-types/meta/v1.d.ts";

/** Bounded classification of an API failure, usable as a metric label. */
export type ApiErrorKind =
  | "BadRequest"
  | "Unauthorized"
  | "Forbidden"
  | "NotFound"
  | "MethodNotAllowed"
  | "Conflict"
  | "AlreadyExists"
  | "Gone"
  | "Invalid"
  | "UnsupportedMediaType"
  | "TooManyRequests"
  | "ServerError"
  | "Timeout"
  | "Network"
  | "Unknown";

/** One field problem reported by the API server with a 422 Invalid answer. */
export interface FieldCause {
  /** The field path, e.g. `spec.ports[0].port` (empty when the server names none). */
  field: string;
  /** The cause's reason, e.g. `FieldValueInvalid`. */
  reason: string;
  /** Human-readable message from the API server. */
  message: string;
}

/** What the client knows about the request that failed. */
export interface ApiErrorInit {
  /** HTTP status code; 0 when no answer arrived (network failure, client-side timeout). */
  status: number;
  /** HTTP method of the failed request. */
  method: string;
  /** Request path (with query) of the failed request. */
  path: string;
  /** The decoded `Status` body, when the server sent one. */
  body?: Status;
  /** Raw body text when it was not a `Status` (truncated). */
  text?: string;
  /** Seconds from a `Retry-After` header or `details.retryAfterSeconds`. */
  retryAfterSeconds?: number;
  /** Force a kind (used for client-side timeouts and network errors). */
  kind?: ApiErrorKind;
}

const MAX_TEXT_CHARS = 256;

/** A failed Kubernetes API request, carrying the server's `Status` when there was one. */
export class ApiError extends Error {
  override name = "ApiError";
  /** Bounded kind, e.g. `NotFound` or `Conflict`. */
  readonly kind: ApiErrorKind;
  /** HTTP status code, 0 when no answer arrived. */
  readonly status: number;
  /** The `Status.reason` from the server (empty when absent). */
  readonly reason: string;
  /** HTTP method of the failed request. */
  readonly method: string;
  /** Request path of the failed request. */
  readonly path: string;
  /** The decoded `Status` body, when the server sent one. */
  readonly body: Status | undefined;
  /** Field causes (mostly for `Invalid`). */
  readonly causes: readonly FieldCause[];
  /** Seconds the server asked us to wait, when it said so. */
  readonly retryAfterSeconds: number | undefined;

  /** Builds the error; the message names method, path, status and the server's message. */
  constructor(init: ApiErrorInit, options?: ErrorOptions) {
    const reason = init.body?.reason ?? "";
    const kind = init.kind ?? classify(init.status, reason);
    const serverMessage = init.body?.message ?? truncate(init.text ?? "");
    const causes = (init.body?.details?.causes ?? []).map(toFieldCause);
    const where = `${init.method} ${init.path}`;
    const code = init.status === 0 ? kind : `${init.status} ${reason || kind}`;
    const causeText = causes.length > 0 && !serverMessage.includes(causes[0]?.message ?? "")
      ? ` (${causes.map((c) => `${c.field}: ${c.message}`).join("; ")})`
      : "";
    super(`${where} failed: ${code}: ${serverMessage || "(no message)"}${causeText}`, options);
    this.kind = kind;
    this.status = init.status;
    this.reason = reason;
    this.method = init.method;
    this.path = init.path;
    this.body = init.body;
    this.causes = causes;
    this.retryAfterSeconds = init.retryAfterSeconds ?? init.body?.details?.retryAfterSeconds;
  }
}

/** Maps an HTTP status and a `Status.reason` to an {@linkcode ApiErrorKind}. */
export function classify(status: number, reason: string): ApiErrorKind {
  switch (status) {
    case 400:
      return "BadRequest";
    case 401:
      return "Unauthorized";
    case 403:
      return "Forbidden";
    case 404:
      return "NotFound";
    case 405:
      return "MethodNotAllowed";
    case 409:
      return reason === "AlreadyExists" ? "AlreadyExists" : "Conflict";
    case 410:
      return "Gone";
    case 415:
      return "UnsupportedMediaType";
    case 422:
      return "Invalid";
    case 429:
      return "TooManyRequests";
    case 408:
    case 504:
      return "Timeout";
  }
  if (reason === "Timeout") return "Timeout";
  if (status >= 500 && status <= 599) return "ServerError";
  return "Unknown";
}

/** Decodes an error body: a `Status` object when it is one, else the raw text. */
export function decodeErrorBody(text: string): { body?: Status; text?: string } {
  try {
    const parsed: unknown = JSON.parse(text);
    if (isStatus(parsed)) return { body: parsed };
  } catch {
    // not JSON: keep the text
  }
  return { text };
}

/** True when `value` looks like a `meta/v1` `Status` object. */
export function isStatus(value: unknown): value is Status {
  return typeof value === "object" && value !== null &&
    (value as { kind?: unknown }).kind === "Status";
}

/** The three HTTP-date forms of RFC 9110 §5.6.7 (IMF-fixdate, RFC 850, asctime). */
const HTTP_DATE_FORMS = [
  /^[A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} GMT$/,
  /^[A-Z][a-z]+, \d{2}-[A-Z][a-z]{2}-\d{2} \d{2}:\d{2}:\d{2} GMT$/,
  /^[A-Z][a-z]{2} [A-Z][a-z]{2} [ \d]\d \d{2}:\d{2}:\d{2} \d{4}$/,
];

/**
 * Parses a `Retry-After` header (RFC 9110 §10.2.3): delay seconds, or an HTTP date turned into the
 * seconds left until it (0 when it has passed).
 * @returns undefined for a missing or malformed header
 */
export function parseRetryAfter(
  header: string | null,
  now: number = Date.now(),
): number | undefined {
  if (header === null) return undefined;
  const value = header.trim();
  if (/^\d+$/.test(value)) return Number(value);
  const form = HTTP_DATE_FORMS.findIndex((pattern) => pattern.test(value));
  if (form < 0) return undefined;
  // asctime carries no zone; HTTP dates are always GMT.
  const at = Date.parse(form === 2 ? `${value} GMT` : value);
  return Number.isNaN(at) ? undefined : Math.max(0, Math.ceil((at - now) / 1000));
}

function toFieldCause(cause: StatusCause): FieldCause {
  return { field: cause.field ?? "", reason: cause.reason ?? "", message: cause.message ?? "" };
}

function truncate(text: string): string {
  const oneLine = text.trim();
  return oneLine.length > MAX_TEXT_CHARS ? `${oneLine.slice(0, MAX_TEXT_CHARS)}…` : oneLine;
}
