/**
 * Simple credential sources: a fixed `Authorization` header and a bearer token file that is read
 * again for every request (projected service-account tokens rotate).
 *
 * @module
 */
import type { CredentialSource } from "./cluster.ts";
import { KubeconfigError } from "./kubeconfig_error.ts";
import { errorMessage } from "../util/error_message.ts";

/** A source that always sends the same `Authorization` header value. */
export function staticCredentials(authorization: string): CredentialSource {
  const credentials = { authorization };
  return { get: () => Promise.resolve(credentials), invalidate: () => false };
}

/** A source that reads a bearer token from `path` for every request; `field` names it in errors. */
export function tokenFileCredentials(
  path: string,
  origin: string,
  field: string,
): CredentialSource {
  return {
    async get() {
      return { authorization: `Bearer ${await readToken(path, origin, field)}` };
    },
    invalidate: () => false,
  };
}

/** Reads and trims a token file, failing with a {@linkcode KubeconfigError} when absent or empty. */
export async function readToken(path: string, origin: string, field: string): Promise<string> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (error) {
    throw new KubeconfigError(
      origin,
      field,
      `cannot read token file "${path}": ${errorMessage(error)}`,
      {
        cause: error,
      },
    );
  }
  const token = text.trim();
  if (token === "") throw new KubeconfigError(origin, field, `token file "${path}" is empty`);
  return token;
}
