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
  // The usual values name no other field (Keep-Alive is hop-by-hop anyway).
  if (value === 'keep-alive' || value === 'close' || value === 'Keep-Alive' || value === 'Close') return null;
  const names = value
    .split(',')
    .map((s) => s.trim().toLowerCase())
    .filter(Boolean);
  return names.length ? new Set(names) : null;
}

/** `name` in lower case (as Node gives request fields, and as endToEndFields has them). */
function isHopByHop(name: string, nominated: Set<string> | null): boolean {
  return HOP_BY_HOP.has(name) || (nominated !== null && nominated.has(name));
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
 * The same end-to-end fields for an HTTP/1.1 request without a body (the quick pass-through's
 * plain requests: lower-case names, one value each), as head lines with our Via, for a client
 * that writes the head itself.
 */
export function forwardRequestHeadLines(headers: Record<string, string>, via: string): string {
  const nominated = connectionNominated(headers.connection);
  let lines = '';
  for (const name in headers) {
    if (name === 'host' || name === 'expect' || name === 'via' || isHopByHop(name, nominated)) continue;
    lines += `${name}: ${headers[name]}\r\n`;
  }
  return `${lines}via: ${appendVia(headers.via, '1.1', via)}\r\n`;
}

/**
 * Which fields of an upstream response go on to the client (indices of `lower`, whose entry i
 * is the lower-case name of raw[2i]), and the Via the response already carried.
 */
function endToEndFields(raw: string[], lower: string[]): { kept: number[]; existingVia: string | undefined } {
  let nominated: Set<string> | null = null;
  let existingVia: string | undefined;
  for (let i = 0; i < lower.length; i++) {
    if (lower[i] === 'connection') nominated = connectionNominated(raw[2 * i + 1]);
    else if (lower[i] === 'via') existingVia = existingVia ? `${existingVia}, ${raw[2 * i + 1]}` : raw[2 * i + 1];
  }
  const kept: number[] = [];
  for (let i = 0; i < lower.length; i++) {
    const name = lower[i];
    if (name !== 'via' && !isHopByHop(name, nominated)) kept.push(i);
  }
  return { kept, existingVia };
}

export function lowerCaseNames(raw: string[]): string[] {
  const lower = new Array<string>(raw.length >> 1);
  for (let i = 0; i < lower.length; i++) lower[i] = raw[2 * i].toLowerCase();
  return lower;
}

/**
 * An upstream response's headers for the client, as a flat raw [name, value, ...] list so
 * names keep their case and repeated headers (Set-Cookie) stay separate.
 */
export function forwardResponseHeaders(rawHeaders: string[], httpVersion: string, via: string): string[] {
  const { kept, existingVia } = endToEndFields(rawHeaders, lowerCaseNames(rawHeaders));
  const out: string[] = [];
  for (const i of kept) out.push(rawHeaders[2 * i], rawHeaders[2 * i + 1]);
  out.push('Via', appendVia(existingVia, httpVersion, via));
  return out;
}

/**
 * The same fields as head lines, for a relay that writes the head itself, and whether the origin
 * sent Content-Length and Date. `lower` as for endToEndFields, made once by the caller.
 */
export function forwardedHeadLines(raw: string[], lower: string[], httpVersion: string, via: string): { lines: string; hasLength: boolean; hasDate: boolean } {
  const { kept, existingVia } = endToEndFields(raw, lower);
  let lines = '';
  let hasLength = false;
  let hasDate = false;
  for (const i of kept) {
    if (lower[i] === 'content-length') hasLength = true;
    else if (lower[i] === 'date') hasDate = true;
    lines += `${raw[2 * i]}: ${raw[2 * i + 1]}\r\n`;
  }
  lines += `Via: ${appendVia(existingVia, httpVersion, via)}\r\n`;
  return { lines, hasLength, hasDate };
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

/**
 * Fields Node's parser keeps only the first of when a request repeats them. Forwarding such a
 * request would silently send the origin something other than what the client sent, so a
 * repeat is refused instead.
 */
const SINGLE_VALUED = new Set([
  'authorization', 'proxy-authorization', 'content-type', 'from', 'if-modified-since', 'if-unmodified-since',
  'max-forwards', 'referer', 'user-agent', 'age', 'etag', 'expires', 'last-modified', 'location', 'retry-after', 'server',
]);

/** RFC 3986 uri-host [ ":" port ] (RFC 9112 §3.2). */
export const HOST_VALUE = /^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-._~!$&'()*+,;=%]*)(?::[0-9]*)?$/;

export interface HeadProblem {
  status: number;
  message: string;
}

/**
 * What is wrong with a request head that Node's parser let through but that this proxy must not
 * forward (RFC 9112 says reject, or forwarding would change the request), or null. `maxBytes`
 * is checked exactly here: Node's own limit lets some heads well past it through.
 */
export function requestHeadProblem(
  req: { httpVersion: string; method?: string; url?: string; rawHeaders: string[] },
  maxBytes: number,
): HeadProblem | null {
  if (req.httpVersion !== '1.1' && req.httpVersion !== '1.0') {
    return { status: 400, message: `Bad request: HTTP/${req.httpVersion} is not supported here; send HTTP/1.1.` };
  }
  let size = (req.method ?? '').length + (req.url ?? '').length + 12;
  let hosts = 0;
  let hostValue = '';
  // Allocated only when needed: this runs for every request.
  let seen: Set<string> | null = null;
  const codings: string[] = [];
  let transferEncodingLines = 0;
  for (let i = 0; i < req.rawHeaders.length; i += 2) {
    const name = req.rawHeaders[i].toLowerCase();
    const value = req.rawHeaders[i + 1];
    size += name.length + value.length + 4;
    if (name === 'host') {
      hosts++;
      hostValue = value;
    } else if (name === 'transfer-encoding') {
      transferEncodingLines++;
      codings.push(...value.split(',').map((s) => s.trim().toLowerCase()).filter(Boolean));
    } else if (SINGLE_VALUED.has(name)) {
      seen ??= new Set<string>();
      if (seen.has(name)) {
        return { status: 400, message: `Bad request: the ${req.rawHeaders[i]} header appears more than once; send it once.` };
      }
      seen.add(name);
    }
  }
  if (size > maxBytes) {
    return { status: 431, message: `Request header fields too large: the request head exceeds ${maxBytes} bytes.` };
  }
  if (hosts > 1) return { status: 400, message: 'Bad request: more than one Host header (RFC 9112 §3.2).' };
  if (hosts === 0 && req.httpVersion === '1.1') return { status: 400, message: 'Bad request: an HTTP/1.1 request needs a Host header (RFC 9112 §3.2).' };
  if (hosts === 1 && !HOST_VALUE.test(hostValue)) return { status: 400, message: 'Bad request: the Host header is not a valid host[:port].' };
  if (transferEncodingLines > 0 && codings.length === 0) {
    // Node reads an empty Transfer-Encoding as "no body"; other parsers read chunks. Ambiguous framing: refuse.
    return { status: 400, message: 'Bad request: empty Transfer-Encoding header.' };
  }
  if (codings.length) {
    if (req.httpVersion === '1.0') {
      // RFC 9112 §6.1: the framing of an HTTP/1.0 message with Transfer-Encoding is faulty.
      return { status: 400, message: 'Bad request: Transfer-Encoding is not allowed in an HTTP/1.0 request.' };
    }
    if (codings.some((c) => !/^[!#$%&'*+\-.^_`|~0-9a-z]+$/.test(c))) {
      return { status: 400, message: 'Bad request: Transfer-Encoding holds something that is not a transfer coding name.' };
    }
    if (codings[codings.length - 1] !== 'chunked' || codings.filter((c) => c === 'chunked').length > 1) {
      // RFC 9112 §6.3: the body length cannot be determined reliably.
      return { status: 400, message: 'Bad request: Transfer-Encoding must end with chunked, applied once.' };
    }
    const others = codings.filter((c) => c !== 'chunked');
    if (others.length) {
      return { status: 501, message: `Not implemented: the request transfer coding "${others.join(', ')}" cannot be forwarded; send the body with chunked or Content-Length only.` };
    }
  }
  return null;
}
