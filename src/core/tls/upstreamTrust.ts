import * as fs from 'node:fs';
import * as tls from 'node:tls';
import { ProxyError } from '../exchange';

/**
 * The CAs origins are verified against. Without `--upstream-ca`, Node's own store (its roots
 * plus NODE_EXTRA_CA_CERTS, read at start) by passing nothing. With it, that same store spelt
 * out, since a `ca` option replaces the store rather than adding to it, plus the file.
 * Verification itself is never turned off.
 */
export function upstreamCaList(upstreamCa: string | null): string[] | undefined {
  if (upstreamCa === null) return undefined;
  const list = [...tls.rootCertificates];
  const extra = process.env.NODE_EXTRA_CA_CERTS;
  if (extra) {
    try {
      list.push(fs.readFileSync(extra, 'utf8'));
    } catch {
      // Node itself warns about an unreadable NODE_EXTRA_CA_CERTS at start.
    }
  }
  let text: string;
  try {
    text = fs.readFileSync(upstreamCa, 'utf8');
  } catch (err) {
    throw new ProxyError(0, `https.upstreamCa: cannot read ${upstreamCa}: ${(err as Error).message}`, 'EUPSTREAMCA');
  }
  if (!text.includes('-----BEGIN CERTIFICATE-----')) {
    throw new ProxyError(0, `https.upstreamCa: ${upstreamCa} holds no PEM certificate (-----BEGIN CERTIFICATE-----)`, 'EUPSTREAMCA');
  }
  list.push(text);
  return list;
}

const UNKNOWN_ISSUER = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'CERT_UNTRUSTED',
  'CERT_SIGNATURE_FAILURE',
]);

/** An origin certificate the proxy did not accept, in words a user can act on; null for other errors. */
export function describeCertificateError(err: NodeJS.ErrnoException, target: string): ProxyError | null {
  const code = err.code ?? '';
  const detail = `(${code}: ${err.message})`;
  if (code === 'CERT_HAS_EXPIRED') return new ProxyError(502, `TLS verification failed: the certificate of ${target} has expired ${detail}`, code);
  if (code === 'CERT_NOT_YET_VALID') return new ProxyError(502, `TLS verification failed: the certificate of ${target} is not valid yet ${detail}`, code);
  if (code === 'ERR_TLS_CERT_ALTNAME_INVALID') {
    return new ProxyError(502, `TLS verification failed: the certificate of ${target} is for another host (wrong host) ${detail}`, code);
  }
  if (UNKNOWN_ISSUER.has(code)) {
    return new ProxyError(
      502,
      `TLS verification failed: the certificate of ${target} is signed by an unknown issuer ${detail}. If it is a private CA, give it to the proxy with --upstream-ca FILE (or NODE_EXTRA_CA_CERTS)`,
      code,
    );
  }
  return null;
}
