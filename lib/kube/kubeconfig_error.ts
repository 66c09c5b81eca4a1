/** The error for a cluster configuration that cannot be used (kubeconfig or in-cluster files). */
export class KubeconfigError extends Error {
  override name = "KubeconfigError";
  /** The file that holds the problem (kubeconfig, token or certificate file). */
  readonly file: string;
  /** The field at fault, e.g. `users[name="admin"].user.client-key` (empty for whole-file problems). */
  readonly field: string;

  /** Builds the error; the message names the file, the field and `why`. */
  constructor(file: string, field: string, why: string, options?: ErrorOptions) {
    super(`${file}${field ? `: ${field}` : ""}: ${why}`, options);
    this.file = file;
    this.field = field;
  }
}
