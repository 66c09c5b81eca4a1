/**
 * A self-signed TLS server certificate made in memory at start-up (what `--metrics-secure` serves
 * when no `--metrics-cert-path` is given, like the Go operator did): an ECDSA P-256 key from
 * WebCrypto and a small DER encoder for the X.509 v3 certificate. Nothing is written to disk.
 * @module
 */

/** A PEM certificate and its PEM private key. */
export interface PemKeyPair {
  readonly cert: string;
  readonly key: string;
}

/** What the certificate names and how long it is valid. */
export interface SelfSignedOptions {
  /** Subject and issuer common name. */
  readonly commonName: string;
  /** Host names in the subjectAltName extension, e.g. `localhost`. */
  readonly dnsNames: readonly string[];
  /** IPv4 or IPv6 addresses in the subjectAltName extension, e.g. `127.0.0.1`, `::1`. */
  readonly ipAddresses: readonly string[];
  /** Validity from an hour before `now`. @default 3650 (the process may run for years) */
  readonly validityDays?: number;
  /** @default new Date() */
  readonly now?: Date;
}

/**
 * Creates a key pair and a self-signed certificate for it, both PEM (the key as PKCS #8).
 * @throws {RangeError} naming a host name or IP address that cannot go into the certificate.
 */
export async function createSelfSignedCertificate(options: SelfSignedOptions): Promise<PemKeyPair> {
  const sanEntries = [
    ...options.dnsNames.map((name) => tlv(0x82, ia5(name, "host name"))),
    ...options.ipAddresses.map((address) => tlv(0x87, ipAddressBytes(address))),
  ];
  const keys = await crypto.subtle.generateKey(
    { name: "ECDSA", namedCurve: "P-256" },
    true,
    ["sign", "verify"],
  );
  const spki = new Uint8Array(await crypto.subtle.exportKey("spki", keys.publicKey));
  const pkcs8 = new Uint8Array(await crypto.subtle.exportKey("pkcs8", keys.privateKey));
  const now = options.now ?? new Date();
  const notBefore = new Date(now.getTime() - 3_600_000);
  const notAfter = new Date(now.getTime() + (options.validityDays ?? 3650) * 86_400_000);
  const name = sequence(set(sequence(oid(OID.commonName), tlv(0x0c, utf8(options.commonName)))));
  const serial = crypto.getRandomValues(new Uint8Array(16));
  serial[0] = (serial[0] ?? 0) & 0x7f | 0x01; // Positive and exactly 16 bytes.
  const signatureAlgorithm = sequence(oid(OID.ecdsaWithSha256));
  const tbs = sequence(
    tlv(0xa0, integer(new Uint8Array([2]))), // version v3
    integer(serial),
    signatureAlgorithm,
    name,
    sequence(time(notBefore), time(notAfter)),
    name,
    spki,
    tlv(
      0xa3,
      sequence(
        extension(OID.basicConstraints, true, sequence()), // cA FALSE (the default, so empty)
        extension(OID.keyUsage, true, bitString(new Uint8Array([0x80]), 7)), // digitalSignature
        extension(OID.extKeyUsage, false, sequence(oid(OID.serverAuth))),
        extension(OID.subjectAltName, false, sequence(...sanEntries)),
      ),
    ),
  );
  const raw = new Uint8Array(
    await crypto.subtle.sign({ name: "ECDSA", hash: "SHA-256" }, keys.privateKey, tbs),
  );
  const signature = sequence(integer(raw.subarray(0, 32)), integer(raw.subarray(32)));
  const certificate = sequence(tbs, signatureAlgorithm, bitString(signature));
  return { cert: pem("CERTIFICATE", certificate), key: pem("PRIVATE KEY", pkcs8) };
}

/** The subjectAltName host names for a server: `localhost` and `hostname` when it is a DNS name. */
export function serverDnsNames(hostname: string | undefined): string[] {
  const names = ["localhost"];
  const valid =
    /^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;
  if (hostname !== undefined && valid.test(hostname) && hostname.toLowerCase() !== "localhost") {
    names.push(hostname);
  }
  return names;
}

/** DER bytes (backed by an ArrayBuffer, as WebCrypto wants). */
type Der = Uint8Array<ArrayBuffer>;

const OID = {
  commonName: "2.5.4.3",
  ecdsaWithSha256: "1.2.840.10045.4.3.2",
  basicConstraints: "2.5.29.19",
  keyUsage: "2.5.29.15",
  extKeyUsage: "2.5.29.37",
  subjectAltName: "2.5.29.17",
  serverAuth: "1.3.6.1.5.5.7.3.1",
} as const;

function tlv(tag: number, content: Uint8Array): Der {
  const length = content.length;
  let header: number[];
  if (length < 0x80) {
    header = [tag, length];
  } else {
    const bytes: number[] = [];
    for (let rest = length; rest > 0; rest = Math.floor(rest / 256)) bytes.unshift(rest % 256);
    header = [tag, 0x80 | bytes.length, ...bytes];
  }
  const out = new Uint8Array(header.length + length);
  out.set(header);
  out.set(content, header.length);
  return out;
}

function concat(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((sum, part) => sum + part.length, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

function sequence(...items: Uint8Array[]): Der {
  return tlv(0x30, concat(items));
}

function set(...items: Uint8Array[]): Der {
  return tlv(0x31, concat(items));
}

/** A non-negative INTEGER from big-endian magnitude bytes. */
function integer(magnitude: Uint8Array): Der {
  let start = 0;
  while (start < magnitude.length - 1 && magnitude[start] === 0) start++;
  const trimmed = magnitude.subarray(start);
  const padded = (trimmed[0] ?? 0) & 0x80 ? concat([new Uint8Array([0]), trimmed]) : trimmed;
  return tlv(0x02, padded);
}

function bitString(bytes: Uint8Array, unusedBits = 0): Der {
  return tlv(0x03, concat([new Uint8Array([unusedBits]), bytes]));
}

function oid(dotted: string): Der {
  const [first = 0, second = 0, ...rest] = dotted.split(".").map(Number);
  const bytes = [first * 40 + second];
  for (const arc of rest) {
    const base128 = [arc & 0x7f];
    for (let value = arc >>> 7; value > 0; value >>>= 7) base128.unshift(0x80 | (value & 0x7f));
    bytes.push(...base128);
  }
  return tlv(0x06, new Uint8Array(bytes));
}

function extension(id: string, critical: boolean, value: Uint8Array): Der {
  const flag = critical ? [tlv(0x01, new Uint8Array([0xff]))] : [];
  return sequence(oid(id), ...flag, tlv(0x04, value));
}

/** UTCTime until 2049, GeneralizedTime from 2050 on (RFC 5280 4.1.2.5). */
function time(date: Date): Der {
  const iso = date.toISOString(); // 2024-01-02T03:04:05.678Z
  const digits = iso.slice(0, 19).replace(/[-:T]/g, "") + "Z";
  return date.getUTCFullYear() < 2050 ? tlv(0x17, utf8(digits.slice(2))) : tlv(0x18, utf8(digits));
}

function utf8(text: string): Uint8Array {
  return new TextEncoder().encode(text);
}

function ia5(text: string, what: string): Uint8Array {
  if (!/^[\x21-\x7e]+$/.test(text)) {
    throw new RangeError(`${what} "${text}" cannot go into a certificate: printable ASCII only`);
  }
  return utf8(text);
}

/** The 4 or 16 bytes of an IPv4 or IPv6 address. */
function ipAddressBytes(address: string): Uint8Array {
  const bad = () =>
    new RangeError(`IP address "${address}" cannot go into a certificate: not an IP literal`);
  if (/^\d{1,3}(\.\d{1,3}){3}$/.test(address)) {
    const octets = address.split(".").map(Number);
    if (octets.some((octet) => octet > 255)) throw bad();
    return new Uint8Array(octets);
  }
  const halves = address.split("::");
  if (halves.length > 2) throw bad();
  const groups = (part: string | undefined) => part ? part.split(":") : [];
  const head = groups(halves[0]);
  const tail = groups(halves[1]);
  const missing = 8 - head.length - tail.length;
  if (halves.length === 1 ? missing !== 0 : missing < 1) throw bad();
  const all = [...head, ...Array<string>(halves.length === 1 ? 0 : missing).fill("0"), ...tail];
  const bytes = new Uint8Array(16);
  for (const [index, group] of all.entries()) {
    if (!/^[0-9a-fA-F]{1,4}$/.test(group)) throw bad();
    const value = Number.parseInt(group, 16);
    bytes[index * 2] = value >> 8;
    bytes[index * 2 + 1] = value & 0xff;
  }
  return bytes;
}

function pem(label: string, der: Uint8Array): string {
  const base64 = btoa(String.fromCharCode(...der));
  const lines = base64.match(/.{1,64}/g) ?? [];
  return `-----BEGIN ${label}-----\n${lines.join("\n")}\n-----END ${label}-----\n`;
}
