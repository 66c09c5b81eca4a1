/**
 * Reads the certificate a TLS server presents (with `openssl s_client`), so that a test can trust
 * exactly that certificate: `Deno.createHttpClient({ caCerts: [pem] })`.
 * @module
 */

/**
 * The PEM leaf certificate of the TLS server on `127.0.0.1:port`.
 * @throws Error with openssl's output when no certificate could be read.
 */
export async function peerCertificate(port: number): Promise<string> {
  const output = await new Deno.Command("openssl", {
    args: ["s_client", "-connect", `127.0.0.1:${port}`, "-servername", "localhost"],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(30_000),
  }).output();
  const text = new TextDecoder().decode(output.stdout);
  const pem = /-----BEGIN CERTIFICATE-----\n[^-]+-----END CERTIFICATE-----\n/.exec(text)?.[0];
  if (pem === undefined) {
    const stderr = new TextDecoder().decode(output.stderr);
    throw new Error(`No certificate from 127.0.0.1:${port}: ${stderr.trim() || text.trim()}`);
  }
  return pem;
}
