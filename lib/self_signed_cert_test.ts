import assert from "node:assert/strict";
import { createSelfSignedCertificate, serverDnsNames } from "./self_signed_cert.ts";

const NAMES = {
  commonName: "undying-proxy",
  dnsNames: ["localhost", "proxy-0.example"],
  ipAddresses: ["127.0.0.1", "::1", "fd00:1::2"],
};

/** Runs openssl with `stdin`; returns the exit code and the combined output. */
async function openssl(args: string[], stdin = ""): Promise<{ code: number; output: string }> {
  const child = new Deno.Command("openssl", {
    args,
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const writer = child.stdin.getWriter();
  await writer.write(new TextEncoder().encode(stdin));
  await writer.close();
  const result = await child.output();
  const decoder = new TextDecoder();
  return {
    code: result.code,
    output: decoder.decode(result.stdout) + decoder.decode(result.stderr),
  };
}

async function withCertFile<T>(cert: string, fn: (path: string) => Promise<T>): Promise<T> {
  const path = await Deno.makeTempFile({ suffix: ".pem" });
  try {
    await Deno.writeTextFile(path, cert);
    return await fn(path);
  } finally {
    await Deno.remove(path);
  }
}

Deno.test("openssl reads the certificate: v3, ECDSA P-256, names, server-only extensions", async () => {
  const now = new Date("2030-05-06T07:08:09Z");
  const { cert } = await createSelfSignedCertificate({ ...NAMES, validityDays: 30, now });
  const { code, output } = await openssl(["x509", "-noout", "-text"], cert);
  assert.equal(code, 0, output);
  assert.match(output, /Version: 3 \(0x2\)/);
  assert.match(output, /Signature Algorithm: ecdsa-with-SHA256/);
  assert.match(output, /Issuer: CN\s?=\s?undying-proxy\n/);
  assert.match(output, /Subject: CN\s?=\s?undying-proxy\n/);
  assert.match(output, /NIST CURVE: P-256/);
  assert.match(output, /Not Before: May {2}6 06:08:09 2030 GMT/);
  assert.match(output, /Not After : Jun {2}5 07:08:09 2030 GMT/);
  assert.match(output, /Basic Constraints: critical\s+CA:FALSE/);
  assert.match(output, /Key Usage: critical\s+Digital Signature\n/);
  assert.match(output, /Extended Key Usage: ?\s+TLS Web Server Authentication\n/);
  assert.match(
    output,
    /DNS:localhost, DNS:proxy-0\.example, IP Address:127\.0\.0\.1, IP Address:0:0:0:0:0:0:0:1, IP Address:FD00:1:0:0:0:0:0:2/,
  );
});

Deno.test("the certificate verifies against itself for each of its names, and only those", async () => {
  const { cert } = await createSelfSignedCertificate(NAMES);
  await withCertFile(cert, async (path) => {
    const verify = (...check: string[]) =>
      openssl(["verify", "-CAfile", path, "-purpose", "sslserver", ...check], cert);
    for (
      const check of [
        ["-verify_hostname", "localhost"],
        ["-verify_hostname", "proxy-0.example"],
        ["-verify_ip", "127.0.0.1"],
        ["-verify_ip", "::1"],
      ]
    ) {
      const result = await verify(...check);
      assert.equal(result.code, 0, `${check.join(" ")}: ${result.output}`);
      assert.match(result.output, /: OK/);
    }
    for (const check of [["-verify_hostname", "example.com"], ["-verify_ip", "10.0.0.1"]]) {
      const result = await verify(...check);
      assert.notEqual(result.code, 0, `${check.join(" ")} must not verify`);
      assert.match(result.output, /mismatch/);
    }
  });
});

Deno.test("the PKCS #8 key belongs to the certificate, and every call makes a new key", async () => {
  const first = await createSelfSignedCertificate(NAMES);
  const second = await createSelfSignedCertificate(NAMES);
  assert.match(
    first.key,
    /^-----BEGIN PRIVATE KEY-----\n[A-Za-z0-9+/=\n]+-----END PRIVATE KEY-----\n$/,
  );
  const certKey = await openssl(["x509", "-noout", "-pubkey"], first.cert);
  const privateKeyPub = await openssl(["pkey", "-pubout"], first.key);
  assert.equal(certKey.code, 0, certKey.output);
  assert.equal(privateKeyPub.code, 0, privateKeyPub.output);
  assert.equal(certKey.output, privateKeyPub.output);
  assert.notEqual(first.key, second.key);
  const serials = await Promise.all(
    [first, second].map(async ({ cert }) =>
      (await openssl(["x509", "-noout", "-serial"], cert)).output
    ),
  );
  assert.notEqual(serials[0], serials[1]);
});

Deno.test("dates from 2050 on are GeneralizedTime, as RFC 5280 requires", async () => {
  const now = new Date("2049-12-01T00:00:00Z");
  const { cert } = await createSelfSignedCertificate({ ...NAMES, validityDays: 60, now });
  const dates = await openssl(["x509", "-noout", "-startdate", "-enddate"], cert);
  assert.equal(dates.code, 0, dates.output);
  assert.match(dates.output, /notBefore=Nov 30 23:00:00 2049 GMT/);
  assert.match(dates.output, /notAfter=Jan 30 00:00:00 2050 GMT/);
  const asn1 = await openssl(["asn1parse"], cert);
  assert.match(asn1.output, /UTCTIME\s+:491130230000Z/);
  assert.match(asn1.output, /GENERALIZEDTIME\s+:20500130000000Z/);
});

Deno.test("Deno.serve serves it; a client trusting it connects by name and by IP", async () => {
  const tls = await createSelfSignedCertificate(NAMES);
  const other = await createSelfSignedCertificate(NAMES);
  await using server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, ...tls, onListen: () => {} },
    () => new Response("hello"),
  );
  using trusting = Deno.createHttpClient({ caCerts: [tls.cert] });
  for (const host of ["127.0.0.1", "localhost"]) {
    const response = await fetch(`https://${host}:${server.addr.port}/`, { client: trusting });
    assert.equal(response.status, 200);
    assert.equal(await response.text(), "hello");
  }
  using stranger = Deno.createHttpClient({ caCerts: [other.cert] });
  await assert.rejects(fetch(`https://127.0.0.1:${server.addr.port}/`, { client: stranger }));
});

Deno.test("names that cannot go into a certificate are refused, naming the value", async () => {
  await assert.rejects(
    createSelfSignedCertificate({ ...NAMES, ipAddresses: ["127.0.0.256"] }),
    /IP address "127\.0\.0\.256" cannot go into a certificate/,
  );
  for (const bad of ["1::2::3", "1:2:3", "::g", "1:2:3:4:5:6:7:8::"]) {
    await assert.rejects(
      createSelfSignedCertificate({ ...NAMES, ipAddresses: [bad] }),
      RangeError,
      bad,
    );
  }
  await assert.rejects(
    createSelfSignedCertificate({ ...NAMES, dnsNames: ["bad name"] }),
    /host name "bad name" cannot go into a certificate/,
  );
});

Deno.test("serverDnsNames: localhost plus the host name when it is a DNS name", () => {
  assert.deepEqual(serverDnsNames("proxy-7d9f-abc"), ["localhost", "proxy-7d9f-abc"]);
  assert.deepEqual(serverDnsNames("node1.example.com"), ["localhost", "node1.example.com"]);
  assert.deepEqual(serverDnsNames("LOCALHOST"), ["localhost"]);
  assert.deepEqual(serverDnsNames(undefined), ["localhost"]);
  assert.deepEqual(serverDnsNames("under_score"), ["localhost"]);
  assert.deepEqual(serverDnsNames("-leading"), ["localhost"]);
});
