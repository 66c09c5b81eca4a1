/** Client certificates in every key format the Kubernetes client must accept, made with openssl. */
import {
  type CertificateFiles,
  createCa,
  createEcKey,
  openssl,
  signCertificate,
  subjectOf,
} from "./_openssl.ts";

export type { CertificateFiles };

/** Private key formats found in real kubeconfigs. */
export type KeyFormat = "rsa-pkcs1" | "rsa-pkcs8" | "ec-sec1" | "ec-pkcs8";

/** Creates a self-signed test CA as `<dir>/<name>.crt` and `<dir>/<name>.key`. */
export async function createTestCa(dir: string, name = "test-ca"): Promise<CertificateFiles> {
  const files = { cert: `${dir}/${name}.crt`, key: `${dir}/${name}.key` };
  await createCa(files, name);
  return files;
}

/**
 * Issues a client certificate for `user` in `groups`, signed by `ca`, with its key written in
 * `format`, as `<dir>/<name>.crt` and `<dir>/<name>.key`.
 */
export async function issueTestClientCertificate(
  ca: CertificateFiles,
  dir: string,
  name: string,
  options: { user: string; groups?: readonly string[]; format: KeyFormat },
): Promise<CertificateFiles> {
  const files = { cert: `${dir}/${name}.crt`, key: `${dir}/${name}.key` };
  const raw = `${dir}/${name}.raw.key`;
  if (options.format.startsWith("rsa")) {
    await openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", raw);
  } else {
    await createEcKey(raw);
  }
  switch (options.format) {
    case "rsa-pkcs1":
      await openssl("rsa", "-in", raw, "-traditional", "-out", files.key);
      break;
    case "ec-sec1":
      await openssl("ec", "-in", raw, "-out", files.key);
      break;
    default:
      await openssl("pkcs8", "-topk8", "-nocrypt", "-in", raw, "-out", files.key);
  }
  await Deno.remove(raw);
  await signCertificate(ca, files, subjectOf(options.user, options.groups), [
    "extendedKeyUsage=clientAuth",
  ]);
  return files;
}
