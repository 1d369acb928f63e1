import { webcrypto } from 'node:crypto';

type CryptoKey = webcrypto.CryptoKey;
type CryptoKeyPair = webcrypto.CryptoKeyPair;

/**
 * @peculiar/x509 over Node's WebCrypto: certificates are built in JavaScript, but keys are made
 * and signatures computed natively (a leaf in about 2 ms; node-forge signs in JavaScript and has
 * no ECDSA). Loaded on first use: a proxy that intercepts nothing never pays for it.
 */
export type X509 = typeof import('@peculiar/x509');

let loaded: Promise<X509> | null = null;

export function x509(): Promise<X509> {
  return (loaded ??= (async () => {
    // tsyringe, which the library uses inside, needs the Reflect metadata polyfill first.
    await import('reflect-metadata');
    const lib = await import('@peculiar/x509');
    lib.cryptoProvider.set(webcrypto as unknown as Parameters<typeof lib.cryptoProvider.set>[0]);
    return lib;
  })());
}

/** ECDSA P-256 with SHA-256: small certificates, fast handshakes, accepted by every current TLS client. */
export const KEY_ALGORITHM = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;

export function generateKeys(): Promise<CryptoKeyPair> {
  return webcrypto.subtle.generateKey(KEY_ALGORITHM, true, ['sign', 'verify']) as Promise<CryptoKeyPair>;
}

/** A positive random serial number, as hex (RFC 5280 §4.1.2.2: up to 20 octets). */
export function randomSerial(): string {
  const bytes = webcrypto.getRandomValues(new Uint8Array(16));
  bytes[0] &= 0x7f;
  return Buffer.from(bytes).toString('hex');
}

export async function privateKeyPem(key: CryptoKey): Promise<string> {
  const der = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', key));
  return `-----BEGIN PRIVATE KEY-----\n${der.toString('base64').replace(/.{64}/g, '$&\n').replace(/\n?$/, '\n')}-----END PRIVATE KEY-----\n`;
}

export async function importPrivateKeyPem(pem: string): Promise<CryptoKey> {
  const b64 = pem.replace(/-----(BEGIN|END) PRIVATE KEY-----/g, '').replace(/\s+/g, '');
  return webcrypto.subtle.importKey('pkcs8', Buffer.from(b64, 'base64'), KEY_ALGORITHM, true, ['sign']) as Promise<CryptoKey>;
}
