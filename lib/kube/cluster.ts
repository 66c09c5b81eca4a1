/**
 * How to reach one cluster: the result of reading a kubeconfig or the in-cluster service account,
 * consumed by {@linkcode KubeClient}.
 *
 * @module
 */

/** A PEM client certificate chain and its private key. */
export interface ClientCertificate {
  /** PEM certificate chain. */
  cert: string;
  /** PEM private key (PKCS#1, PKCS#8 or SEC1 EC). */
  key: string;
}

/** Credentials to attach to one request. */
export interface Credentials {
  /** Value of the `Authorization` header, e.g. `Bearer abc`. */
  authorization?: string;
  /** A client certificate that overrides the cluster's static one (exec plugins may return one). */
  clientCertificate?: ClientCertificate;
}

/** Supplies credentials per request; may read files or run a plugin. */
export interface CredentialSource {
  /** Credentials for the next request. */
  get(): Promise<Credentials>;
  /** Forgets cached credentials after a 401; true when the next `get()` may return new ones. */
  invalidate(): boolean;
}

/** Everything the client needs to talk to one API server. */
export interface ClusterConfig {
  /** API server base URL, without a trailing slash (may carry a path prefix). */
  server: string;
  /** Extra trusted CA certificates (PEM); the system roots are used when empty. */
  caCerts: string[];
  /** Static client certificate for mutual TLS. */
  clientCertificate?: ClientCertificate;
  /** Per-request credentials (token, token file, exec plugin, basic auth, or none). */
  credentials: CredentialSource;
  /** Default namespace of the context (or of the service account). */
  namespace: string;
  /** HTTP(S) or SOCKS5 proxy URL from the kubeconfig's `proxy-url`. */
  proxyUrl?: string;
  /** Where this configuration came from, for error messages (e.g. `context "kind" in /x/config`). */
  source: string;
}

/** A credential source that sends nothing. */
export const NO_CREDENTIALS: CredentialSource = {
  get: () => Promise.resolve({}),
  invalidate: () => false,
};
