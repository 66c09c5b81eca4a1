/** The `openssl` CLI steps shared by the test PKIs (`_pki.ts`, `kube_test_certs.ts`). */

/** PEM files of one certificate and its key. */
export interface CertificateFiles {
  /** Certificate path. */
  readonly cert: string;
  /** Private key path. */
  readonly key: string;
}

/** How long test certificates stay valid. */
const VALID_DAYS = "7";

/**
 * Runs `openssl args…`.
 * @throws Error with openssl's stderr when it cannot run or exits non-zero
 */
export async function openssl(...args: string[]): Promise<void> {
  let output: Deno.CommandOutput;
  try {
    output = await new Deno.Command("openssl", { args, stdout: "piped", stderr: "piped" }).output();
  } catch (error) {
    throw new Error(`Cannot run openssl (needed to make test certificates): ${error}`);
  }
  if (!output.success) {
    const stderr = new TextDecoder().decode(output.stderr).trim();
    throw new Error(`openssl ${args.join(" ")} exited with code ${output.code}: ${stderr}`);
  }
}

/** Creates a self-signed CA with a new P-256 key at `files`. */
export async function createCa(files: CertificateFiles, commonName: string): Promise<void> {
  await openssl(
    "req",
    "-x509",
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:prime256v1",
    "-nodes",
    "-keyout",
    files.key,
    "-out",
    files.cert,
    "-days",
    VALID_DAYS,
    "-subj",
    `/CN=${escapeSubject(commonName)}`,
    "-addext",
    "basicConstraints=critical,CA:TRUE",
    "-addext",
    "keyUsage=critical,keyCertSign,cRLSign,digitalSignature",
  );
}

/** Creates a new unencrypted P-256 key at `path` (PKCS#8). */
export async function createEcKey(path: string): Promise<void> {
  await openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", path);
}

/**
 * Writes `files.cert`: a certificate for the existing key `files.key`, for `subject` (an openssl
 * `/CN=…/O=…` string, see {@linkcode subjectOf}), with `extensions`, signed by `ca`.
 */
export async function signCertificate(
  ca: CertificateFiles,
  files: CertificateFiles,
  subject: string,
  extensions: readonly string[],
): Promise<void> {
  const csr = `${files.cert}.csr`;
  const extFile = `${files.cert}.ext`;
  await openssl("req", "-new", "-key", files.key, "-out", csr, "-subj", subject);
  await Deno.writeTextFile(extFile, extensions.join("\n") + "\n");
  try {
    await openssl(
      "x509",
      "-req",
      "-in",
      csr,
      "-CA",
      ca.cert,
      "-CAkey",
      ca.key,
      "-CAcreateserial",
      "-days",
      VALID_DAYS,
      "-extfile",
      extFile,
      "-out",
      files.cert,
    );
  } finally {
    await Deno.remove(csr);
    await Deno.remove(extFile);
  }
}

/** The openssl subject of a Kubernetes client identity: user as CN, each group as O. */
export function subjectOf(user: string, groups: readonly string[] = []): string {
  return `/CN=${escapeSubject(user)}` + groups.map((g) => `/O=${escapeSubject(g)}`).join("");
}

function escapeSubject(value: string): string {
  return value.replace(/[\\/+=]/g, (c) => `\\${c}`);
}
