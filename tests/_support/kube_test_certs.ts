/** Client certificates in every key format the Kubernetes client must accept, made with openssl. */

/** Private key formats found in real kubeconfigs. */
export type KeyFormat = "rsa-pkcs1" | "rsa-pkcs8" | "ec-sec1" | "ec-pkcs8";

/** PEM files of one certificate and its key. */
export interface CertificateFiles {
  /** Certificate path. */
  readonly cert: string;
  /** Private key path. */
  readonly key: string;
}

/** Creates a self-signed test CA as `<dir>/<name>.crt` and `<dir>/<name>.key`. */
export async function createTestCa(dir: string, name = "test-ca"): Promise<CertificateFiles> {
  const files = { cert: `${dir}/${name}.crt`, key: `${dir}/${name}.key` };
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
    "2",
    "-subj",
    `/CN=${name}`,
    "-addext",
    "basicConstraints=critical,CA:TRUE",
    "-addext",
    "keyUsage=critical,keyCertSign",
  );
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
    await openssl(
      "genpkey",
      "-algorithm",
      "EC",
      "-pkeyopt",
      "ec_paramgen_curve:P-256",
      "-out",
      raw,
    );
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
  const subject = `/CN=${options.user}` + (options.groups ?? []).map((g) => `/O=${g}`).join("");
  const csr = `${dir}/${name}.csr`;
  const ext = `${dir}/${name}.ext`;
  await openssl("req", "-new", "-key", files.key, "-out", csr, "-subj", subject);
  await Deno.writeTextFile(ext, "extendedKeyUsage=clientAuth\n");
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
    "2",
    "-extfile",
    ext,
    "-out",
    files.cert,
  );
  for (const temp of [raw, csr, ext]) await Deno.remove(temp);
  return files;
}

async function openssl(...args: string[]): Promise<void> {
  const output = await new Deno.Command("openssl", { args, stdout: "piped", stderr: "piped" })
    .output();
  if (!output.success) {
    throw new Error(
      `openssl ${args.join(" ")} failed (${output.code}): ${
        new TextDecoder().decode(output.stderr)
      }`,
    );
  }
}
