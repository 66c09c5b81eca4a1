/** Certificates and keys for a test control plane, made with the `openssl` CLI. */
import {
  type CertificateFiles,
  createCa,
  createEcKey,
  openssl,
  signCertificate,
  subjectOf,
} from "./_openssl.ts";

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
  await createCa({ cert: pki.caCert, key: pki.caKey }, "undying-proxy-test-ca");
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
): Promise<CertificateFiles> {
  return await signedCertificate(pki, dir, name, subjectOf(subject.user, subject.groups), [
    "extendedKeyUsage=clientAuth",
  ]);
}

async function signedCertificate(
  pki: Pki,
  dir: string,
  name: string,
  subject: string,
  extensions: readonly string[],
): Promise<CertificateFiles> {
  const files = { cert: `${dir}/${name}.crt`, key: `${dir}/${name}.key` };
  await createEcKey(files.key);
  await signCertificate({ cert: pki.caCert, key: pki.caKey }, files, subject, extensions);
  return files;
}
