import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';

/** Headers that describe one connection, never forwarded (RFC 9110 §7.6.1, RFC 9112). */
const HOP_BY_HOP = new Set([
  'connection',
  'proxy-connection',
  'keep-alive',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'proxy-authorization',
  'proxy-authenticate',
]);

/** The names a Connection header lists are hop-by-hop too. */
function connectionNominated(connection: string | string[] | undefined): Set<string> | null {
  if (!connection) return null;
  const value = Array.isArray(connection) ? connection.join(',') : connection;
  const names = value
    .split(',')
    .map((s) => s.trim().toLowerCase())
    .filter(Boolean);
  return names.length ? new Set(names) : null;
}

export function isHopByHop(name: string, nominated: Set<string> | null): boolean {
  const lower = name.toLowerCase();
  return HOP_BY_HOP.has(lower) || (nominated !== null && nominated.has(lower));
}

/** The end-to-end request headers to send upstream, with our Via appended. Host is left to the caller. */
export function forwardRequestHeaders(headers: IncomingHttpHeaders, httpVersion: string, via: string): OutgoingHttpHeaders {
  const nominated = connectionNominated(headers.connection);
  const out: OutgoingHttpHeaders = {};
  for (const name in headers) {
    // Expect: the server already answered 100-continue to the client. (Forwarding it also makes
    // Node's client flush the head early, encoding non-ASCII field bytes as UTF-8.)
    if (name === 'host' || name === 'expect' || isHopByHop(name, nominated)) continue;
    out[name] = headers[name];
  }
  if (headers['transfer-encoding'] !== undefined) {
    // The body is re-chunked upstream. Said explicitly: for GET, HEAD, DELETE, OPTIONS Node's client
    // does not chunk by default and would write the body bytes unframed, where the origin reads
    // them as the next request on the connection (request smuggling).
    out['transfer-encoding'] = 'chunked';
  }
  out.via = appendVia(headers.via, httpVersion, via);
  return out;
}

/**
 * An upstream response's headers for the client, as a flat raw [name, value, ...] list so
 * names keep their case and repeated headers (Set-Cookie) stay separate.
 */
export function forwardResponseHeaders(rawHeaders: string[], httpVersion: string, via: string): string[] {
  let nominated: Set<string> | null = null;
  let existingVia: string | undefined;
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const lower = rawHeaders[i].toLowerCase();
    if (lower === 'connection') nominated = connectionNominated(rawHeaders[i + 1]);
    else if (lower === 'via') existingVia = existingVia ? `${existingVia}, ${rawHeaders[i + 1]}` : rawHeaders[i + 1];
  }
  const out: string[] = [];
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i];
    const lower = name.toLowerCase();
    if (lower === 'via' || isHopByHop(lower, nominated)) continue;
    out.push(name, rawHeaders[i + 1]);
  }
  out.push('Via', appendVia(existingVia, httpVersion, via));
  return out;
}

export function appendVia(existing: string | string[] | undefined, httpVersion: string, via: string): string {
  const ours = `${httpVersion === '1.0' ? '1.0' : '1.1'} ${via}`;
  if (!existing) return ours;
  return `${Array.isArray(existing) ? existing.join(', ') : existing}, ${ours}`;
}

/** True when a request carries a body (RFC 9112 §6.3): a Transfer-Encoding, or a non-zero Content-Length. */
export function requestHasBody(headers: IncomingHttpHeaders): boolean {
  if (headers['transfer-encoding'] !== undefined) return true;
  const length = headers['content-length'];
  return length !== undefined && length !== '0';
}
