/** Certificates and keys for a test control plane, made with the `openssl` CLI. */

/** Paths of every PEM file a control plane needs (all inside one directory). */
export interface Pki {
  readonly caCert: string;
  readonly caKey: string;
  readonly servingCert: string;
  readonly servingKey: string;
  readonly adminCert: string;
  readonly adminKey: string;
  readonly serviceAccountKey: string;
  readonly serviceAccountPub: string;
}

/** Subject of a client certificate: user name (CN) and groups (O). */
export interface ClientSubject {
  readonly user: string;
  readonly groups: readonly string[];
}

const validDays = "7";

/** Creates a CA, a serving certificate for 127.0.0.1/localhost, an admin client cert and SA keys. */
export async function createPki(dir: string): Promise<Pki> {
  const pki: Pki = {
    caCert: `${dir}/ca.crt`,
    caKey: `${dir}/ca.key`,
    servingCert: `${dir}/apiserver.crt`,
    servingKey: `${dir}/apiserver.key`,
    adminCert: `${dir}/admin.crt`,
    adminKey: `${dir}/admin.key`,
    serviceAccountKey: `${dir}/sa.key`,
    serviceAccountPub: `${dir}/sa.pub`,
  };
  await openssl(
    "req",
    "-x509",
    ...ecKey(pki.caKey),
    "-out",
    pki.caCert,
    "-days",
    validDays,
    "-subj",
    "/CN=undying-proxy-test-ca",
    "-addext",
    "basicConstraints=critical,CA:TRUE",
    "-addext",
    "keyUsage=critical,keyCertSign,cRLSign,digitalSignature",
  );
  await signedCertificate(pki, dir, "apiserver", "/CN=kube-apiserver", [
    "subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default," +
    "DNS:kubernetes.default.svc,IP:10.0.0.1",
    "extendedKeyUsage=serverAuth",
  ]);
  await issueClientCertificate(pki, dir, "admin", { user: "admin", groups: ["system:masters"] });
  await openssl(
    "genpkey",
    "-algorithm",
    "RSA",
    "-pkeyopt",
    "rsa_keygen_bits:2048",
    "-out",
    pki.serviceAccountKey,
  );
  await openssl("pkey", "-in", pki.serviceAccountKey, "-pubout", "-out", pki.serviceAccountPub);
  return pki;
}

/**
 * Issues `<dir>/<name>.crt` and `<dir>/<name>.key` (PKCS#8 EC key) signed by the CA, for `subject`.
 * @returns the certificate and key paths
 */
export async function issueClientCertificate(
  pki: Pki,
  dir: string,
  name: string,
  subject: ClientSubject,
): Promise<{ cert: string; key: string }> {
  const subj = `/CN=${escapeSubject(subject.user)}` +
    subject.groups.map((g) => `/O=${escapeSubject(g)}`).join("");
  return await signedCertificate(pki, dir, name, subj, ["extendedKeyUsage=clientAuth"]);
}

async function signedCertificate(
  pki: Pki,
  dir: string,
  name: string,
  subj: string,
  extensions: readonly string[],
): Promise<{ cert: string; key: string }> {
  const key = `${dir}/${name}.key`;
  const csr = `${dir}/${name}.csr`;
  const cert = `${dir}/${name}.crt`;
  const extFile = `${dir}/${name}.ext`;
  await openssl("req", "-new", ...ecKey(key), "-out", csr, "-subj", subj);
  await Deno.writeTextFile(extFile, extensions.join("\n") + "\n");
  await openssl(
    "x509",
    "-req",
    "-in",
    csr,
    "-CA",
    pki.caCert,
    "-CAkey",
    pki.caKey,
    "-CAcreateserial",
    "-days",
    validDays,
    "-extfile",
    extFile,
    "-out",
    cert,
  );
  await Deno.remove(csr);
  await Deno.remove(extFile);
  return { cert, key };
}

/** openssl arguments that create a new P-256 key, unencrypted, written to `keyPath`. */
function ecKey(keyPath: string): string[] {
  return [
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:prime256v1",
    "-nodes",
    "-keyout",
    keyPath,
  ];
}

function escapeSubject(value: string): string {
  return value.replaceAll("\\", "\\\\").replaceAll("/", "\\/").replaceAll("+", "\\+").replaceAll(
    "=",
    "\\=",
  );
}

async function openssl(...args: string[]): Promise<void> {
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
