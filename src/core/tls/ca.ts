import { X509Certificate as NodeX509, createPrivateKey } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tls from 'node:tls';
import type { webcrypto } from 'node:crypto';
import { ProxyError } from '../exchange';
import { CA_BUNDLE_FILE, CA_FILE, CA_KEY_FILE } from './names';
import { generateKeys, importPrivateKeyPem, KEY_ALGORITHM, privateKeyPem, randomSerial, x509 } from './x509';

/** Debian's (and most Linux distributions') system trust store, added to the bundle when present. */
const SYSTEM_BUNDLE = '/etc/ssl/certs/ca-certificates.crt';
const CA_YEARS = 10;

/** The proxy's local certificate authority, as loaded from (or just made in) its folder. */
export interface LocalCa {
  /** Absolute paths. */
  certPath: string;
  keyPath: string;
  bundlePath: string;
  certPem: string;
  key: webcrypto.CryptoKey;
  /** The issuer name leaves carry, and the CA's own X.509 object (for the authority key identifier). */
  cert: import('@peculiar/x509').X509Certificate;
  /** SHA-256 of the DER certificate, as colon-separated hex (what browsers and `openssl x509 -fingerprint -sha256` show). */
  fingerprint256: string;
  validFrom: Date;
  validTo: Date;
  /** True when this call made the CA. */
  created: boolean;
}

/**
 * Loads the CA in `dir`, making it on first use: the folder 0700, the key 0600 (owner only,
 * whatever the umask), the certificate beside it. Refreshes `ca-bundle.pem`, the system's roots
 * plus ours, for tools whose variable replaces their trust store instead of adding to it.
 * A damaged or half-present CA is an error naming the file, never silently replaced: clients
 * may already trust the old certificate.
 */
export async function loadOrCreateCa(dir: string): Promise<LocalCa> {
  const folder = path.resolve(dir);
  const certPath = path.join(folder, CA_FILE);
  const keyPath = path.join(folder, CA_KEY_FILE);
  const bundlePath = path.join(folder, CA_BUNDLE_FILE);
  try {
    fs.mkdirSync(folder, { recursive: true, mode: 0o700 });
    fs.chmodSync(folder, 0o700);
  } catch (err) {
    throw new ProxyError(0, `cannot use the CA folder ${folder}: ${(err as Error).message}`, (err as NodeJS.ErrnoException).code);
  }
  const hasCert = fs.existsSync(certPath);
  const hasKey = fs.existsSync(keyPath);
  let created = false;
  if (!hasCert && !hasKey) {
    await createCa(certPath, keyPath);
    created = true;
  } else if (hasCert !== hasKey) {
    throw new ProxyError(0, `the CA in ${folder} is incomplete: ${hasCert ? CA_KEY_FILE : CA_FILE} is missing. Restore it, or remove ${hasCert ? CA_FILE : CA_KEY_FILE} to have a new CA made (clients must then trust the new one).`);
  }
  const lib = await x509();
  let certPem: string;
  let cert: import('@peculiar/x509').X509Certificate;
  let key: webcrypto.CryptoKey;
  try {
    certPem = fs.readFileSync(certPath, 'utf8');
    cert = new lib.X509Certificate(certPem);
  } catch (err) {
    throw new ProxyError(0, `${certPath} is not a readable PEM certificate: ${(err as Error).message}`);
  }
  let keyPem: string;
  try {
    fs.chmodSync(keyPath, 0o600);
    keyPem = fs.readFileSync(keyPath, 'utf8');
    key = (await importPrivateKeyPem(keyPem)) as webcrypto.CryptoKey;
  } catch (err) {
    throw new ProxyError(0, `${keyPath} is not a readable ECDSA P-256 private key (PKCS #8 PEM): ${(err as Error).message}`);
  }
  const node = new NodeX509(certPem);
  if (!node.checkPrivateKey(createPrivateKey(keyPem))) {
    throw new ProxyError(0, `${keyPath} is not the key of ${certPath}: restore the matching pair, or remove both to have a new CA made.`);
  }
  writeBundle(bundlePath, certPem);
  return {
    certPath,
    keyPath,
    bundlePath,
    certPem,
    key,
    cert,
    fingerprint256: node.fingerprint256,
    validFrom: new Date(node.validFrom),
    validTo: new Date(node.validTo),
    created,
  };
}

async function createCa(certPath: string, keyPath: string): Promise<void> {
  const lib = await x509();
  const keys = await generateKeys();
  const now = Date.now();
  const name = `CN=Caching Proxy CA (${os.userInfo().username}@${os.hostname()}), O=Caching Proxy`.replace(/[+;"\\<>]/g, '');
  const cert = await lib.X509CertificateGenerator.createSelfSigned({
    serialNumber: randomSerial(),
    name,
    // A day back: clients whose clocks run a little behind still accept it.
    notBefore: new Date(now - 86_400_000),
    notAfter: new Date(now + CA_YEARS * 365 * 86_400_000),
    keys,
    signingAlgorithm: KEY_ALGORITHM,
    extensions: [
      new lib.BasicConstraintsExtension(true, 0, true),
      new lib.KeyUsagesExtension(lib.KeyUsageFlags.keyCertSign | lib.KeyUsageFlags.cRLSign | lib.KeyUsageFlags.digitalSignature, true),
      await lib.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  const keyPem = await privateKeyPem(keys.privateKey);
  // The key first, owner-only from its first byte; each file appears whole (rename), so a reader never sees half a CA.
  writeAtomic(keyPath, keyPem, 0o600);
  writeAtomic(certPath, cert.toString('pem') + '\n', 0o644);
}

function writeAtomic(file: string, text: string, mode: number): void {
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, text, { mode, flag: 'w' });
  fs.chmodSync(tmp, mode);
  fs.renameSync(tmp, file);
}

/** The system's roots (Node's bundled ones and the distribution's store) followed by ours; rewritten only when it changes. */
function writeBundle(bundlePath: string, caPem: string): void {
  const parts = [...tls.rootCertificates];
  try {
    parts.push(fs.readFileSync(SYSTEM_BUNDLE, 'utf8'));
  } catch {
    // No distribution store (macOS, Windows): Node's roots alone.
  }
  parts.push(`# Caching Proxy local CA\n${caPem}`);
  const text = parts.map((p) => p.trim()).join('\n') + '\n';
  try {
    if (fs.readFileSync(bundlePath, 'utf8') === text) return;
  } catch {
    // Not there yet.
  }
  writeAtomic(bundlePath, text, 0o644);
}
