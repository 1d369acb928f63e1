import * as net from 'node:net';
import * as tls from 'node:tls';
import { LRUCache } from 'lru-cache';
import type { LocalCa } from './ca';
import { generateKeys, KEY_ALGORITHM, privateKeyPem, randomSerial, x509 } from './x509';

/** Distinct hosts whose TLS contexts are kept; the least recently used are made again on demand. */
export const MAX_LEAF_CONTEXTS = 1_000;
/** Leaves are short-lived: a stolen one is of little use, and clients never see a long-lived leaf to pin. */
const LEAF_DAYS = 7;
/** A context is made anew once its certificate is this old, long before it expires. */
const RENEW_AFTER_MS = 3 * 86_400_000;

interface Leaf {
  context: tls.SecureContext;
  made: number;
}

/**
 * Leaf certificates for intercepted hosts, signed by the local CA: one per name (an IP SAN for
 * an address), all sharing one key made at start, each kept as a ready TLS context in an LRU of
 * MAX_LEAF_CONTEXTS. Concurrent handshakes for a new name share one generation.
 */
export class LeafCertificates {
  private readonly contexts = new LRUCache<string, Leaf>({ max: MAX_LEAF_CONTEXTS });
  private readonly pending = new Map<string, Promise<tls.SecureContext>>();
  private sharedKey: Promise<{ keys: CryptoKeyPair; pem: string }> | null = null;
  /** How many leaves were made (for tests and the log). */
  made = 0;

  constructor(private readonly ca: LocalCa) {}

  get size(): number {
    return this.contexts.size;
  }

  /** The TLS context for `name` (a DNS name or an address), made if need be. */
  context(name: string): Promise<tls.SecureContext> {
    const key = name.toLowerCase();
    const leaf = this.contexts.get(key);
    if (leaf !== undefined && Date.now() - leaf.made < RENEW_AFTER_MS) return Promise.resolve(leaf.context);
    let pending = this.pending.get(key);
    if (pending === undefined) {
      pending = this.make(key).finally(() => this.pending.delete(key));
      this.pending.set(key, pending);
    }
    return pending;
  }

  /** A PEM leaf certificate for `name` (exposed for tests of its fields). */
  async certificatePem(name: string): Promise<string> {
    const lib = await x509();
    const { keys } = await this.key();
    const now = Date.now();
    const ip = net.isIP(name) !== 0;
    const cert = await lib.X509CertificateGenerator.create({
      serialNumber: randomSerial(),
      subject: `CN=${ip ? name : name.slice(0, 64).replace(/[,+;"\\<>=]/g, '')}`,
      issuer: this.ca.cert.subject,
      notBefore: new Date(now - 3_600_000),
      notAfter: new Date(now + LEAF_DAYS * 86_400_000),
      publicKey: keys.publicKey,
      signingKey: this.ca.key,
      signingAlgorithm: KEY_ALGORITHM,
      extensions: [
        new lib.SubjectAlternativeNameExtension([{ type: ip ? 'ip' : 'dns', value: name }]),
        new lib.BasicConstraintsExtension(false, undefined, true),
        new lib.KeyUsagesExtension(lib.KeyUsageFlags.digitalSignature, true),
        new lib.ExtendedKeyUsageExtension([lib.ExtendedKeyUsage.serverAuth]),
        await lib.AuthorityKeyIdentifierExtension.create(this.ca.cert),
      ],
    });
    this.made++;
    return cert.toString('pem');
  }

  private async make(name: string): Promise<tls.SecureContext> {
    const [{ pem: keyPem }, cert] = await Promise.all([this.key(), this.certificatePem(name)]);
    const context = tls.createSecureContext({ key: keyPem, cert, minVersion: 'TLSv1.2' });
    this.contexts.set(name, { context, made: Date.now() });
    return context;
  }

  private key(): Promise<{ keys: CryptoKeyPair; pem: string }> {
    return (this.sharedKey ??= generateKeys().then(async (keys) => ({ keys, pem: await privateKeyPem(keys.privateKey) })));
  }
}

type CryptoKeyPair = import('node:crypto').webcrypto.CryptoKeyPair;
