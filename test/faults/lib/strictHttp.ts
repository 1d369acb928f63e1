/**
 * A deliberately strict HTTP/1.1 request reader (RFC 9112), the yardstick of the abuse tests:
 * whatever the proxy forwards must be exactly what this reader reads from the client's bytes.
 *
 * Strict everywhere, except the two leniencies RFC 9112 grants recipients that cannot change
 * the meaning of a message: empty lines before a request-line (§2.2) and runs of SP between
 * the parts of the request-line (§3).
 */

export interface StrictRequest {
  method: string;
  target: string;
  version: '1.0' | '1.1';
  /** Field lines in order: name as sent, value without surrounding whitespace (latin1). */
  headers: Array<[string, string]>;
  body: Buffer;
  chunked: boolean;
}

export type StreamTail =
  | { kind: 'end' }
  /** The bytes stop inside a request: nothing about it may reach the origin. */
  | { kind: 'incomplete' }
  /** Malformed: must get a 4xx or a closed connection. */
  | { kind: 'invalid'; reason: string }
  /** Well-formed but uses a transfer coding no proxy can forward faithfully: 4xx, 501 or a close. */
  | { kind: 'unsupported'; reason: string };

export interface StreamReading {
  requests: StrictRequest[];
  tail: StreamTail;
  /** Offset just past the last complete request. */
  consumed: number;
}

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const FIELD_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;
const HOST_VALUE = /^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-._~!$&'()*+,;=%]*)(?::[0-9]*)?$/;
// Chunk extensions: the proxy discards them when it re-chunks, so their content cannot reach the
// origin; only where the line ends matters (no CR, LF or NUL inside it).
const CHUNK_LINE = /^([0-9A-Fa-f]{1,16})((?:;[\t\x20-\x7e\x80-\xff]*)?)$/;
const CRLF = Buffer.from('\r\n');
const HEAD_END = Buffer.from('\r\n\r\n');

class Invalid extends Error {
  constructor(
    readonly kind: 'invalid' | 'unsupported',
    reason: string,
  ) {
    super(reason);
  }
}

/** Reads every complete request in `bytes`, stopping where the connection would stop being HTTP. */
export function readRequests(bytes: Buffer, maxHeadBytes = 64 * 1024): StreamReading {
  const requests: StrictRequest[] = [];
  let at = 0;
  let consumed = 0;
  for (;;) {
    // Empty lines before a request-line are ignored (RFC 9112 §2.2). Stray CR or LF bytes there are
    // skipped too: they carry nothing, so skipping them cannot change what the request means.
    while (bytes[at] === 0x0d || bytes[at] === 0x0a) at++;
    if (at >= bytes.length) return { requests, tail: { kind: 'end' }, consumed };
    let step: { request: StrictRequest; next: number; last: boolean } | null;
    try {
      step = readOne(bytes, at, maxHeadBytes);
    } catch (err) {
      if (err instanceof Invalid) return { requests, tail: { kind: err.kind, reason: err.message }, consumed };
      throw err;
    }
    if (!step) return { requests, tail: { kind: 'incomplete' }, consumed };
    requests.push(step.request);
    at = consumed = step.next;
    if (step.last) return { requests, tail: { kind: 'end' }, consumed };
  }
}

function readOne(bytes: Buffer, start: number, maxHeadBytes: number): { request: StrictRequest; next: number; last: boolean } | null {
  const headEnd = bytes.indexOf(HEAD_END, start);
  if (headEnd < 0) {
    if (bytes.length - start > maxHeadBytes) throw new Invalid('invalid', 'request head too large');
    // Bytes that can never start a valid head are invalid now, not merely incomplete.
    const partial = bytes.subarray(start).toString('latin1');
    const firstLine = partial.split('\r\n')[0];
    // (A bare LF may end the line for a lenient recipient, RFC 9112 §2.2: still waiting, not yet invalid.)
    if (/\x00/.test(firstLine) || (firstLine.length > 0 && !/^[!#$%&'*+\-.^_`|~0-9A-Za-z]/.test(firstLine))) {
      throw new Invalid('invalid', 'not an HTTP request line');
    }
    return null;
  }
  if (headEnd + 4 - start > maxHeadBytes) throw new Invalid('invalid', 'request head too large');
  const lines = bytes.subarray(start, headEnd).toString('latin1').split('\r\n');
  for (const line of lines) if (/[\r\n]/.test(line)) throw new Invalid('invalid', 'bare CR or LF in the head');

  const parts = lines[0].split(/ +/);
  if (parts.length !== 3 || lines[0].startsWith(' ') || lines[0].endsWith(' ')) throw new Invalid('invalid', 'malformed request-line');
  const [method, target, versionText] = parts;
  if (!TOKEN.test(method)) throw new Invalid('invalid', 'method is not a token');
  if (!/^[\x21-\x7e]+$/.test(target)) throw new Invalid('invalid', 'request-target has forbidden bytes');
  const vm = /^HTTP\/1\.([01])$/.exec(versionText);
  if (!vm) throw new Invalid('invalid', `unsupported version ${JSON.stringify(versionText)}`);
  const version = vm[1] === '1' ? '1.1' : '1.0';
  if (method === 'CONNECT') {
    if (!/^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-._~%]+):[0-9]+$/.test(target)) throw new Invalid('invalid', 'CONNECT needs host:port');
  } else if (!(target.startsWith('/') || /^[A-Za-z][A-Za-z0-9+.-]*:\/\//.test(target) || (target === '*' && method === 'OPTIONS'))) {
    throw new Invalid('invalid', 'request-target is in no known form');
  }

  const scheme = /^https?:\/\/([^/?#]*)/i.exec(target);
  if (scheme && (!/^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-._~!$&'()*+,;=%]+)(?::[0-9]*)?$/.test(scheme[1]) || target.includes('\\'))) {
    // RFC 9110 §4.2: an http(s) URI has a non-empty host and no user info.
    throw new Invalid('invalid', 'absolute target without a valid authority');
  }

  const headers: Array<[string, string]> = [];
  for (const line of lines.slice(1)) {
    if (line.startsWith(' ') || line.startsWith('\t')) throw new Invalid('invalid', 'obs-fold');
    const colon = line.indexOf(':');
    if (colon <= 0) throw new Invalid('invalid', 'field line without a name');
    const name = line.slice(0, colon);
    if (!TOKEN.test(name)) throw new Invalid('invalid', `field name ${JSON.stringify(name)} is not a token`);
    const value = line.slice(colon + 1).replace(/^[ \t]+|[ \t]+$/g, '');
    if (!FIELD_VALUE.test(value)) throw new Invalid('invalid', `field ${name} has forbidden bytes`);
    headers.push([name, value]);
  }
  const all = (n: string) => headers.filter(([k]) => k.toLowerCase() === n).map(([, v]) => v);

  const hosts = all('host');
  if (hosts.length > 1) throw new Invalid('invalid', 'more than one Host');
  if (hosts.length === 0 && version === '1.1') throw new Invalid('invalid', 'no Host in an HTTP/1.1 request');
  if (hosts.length === 1 && !HOST_VALUE.test(hosts[0])) throw new Invalid('invalid', 'malformed Host');

  const te = all('transfer-encoding');
  const cl = all('content-length');
  const bodyStart = headEnd + 4;
  let body: Buffer;
  let next: number;
  let chunked = false;
  if (te.length) {
    if (cl.length) throw new Invalid('invalid', 'both Content-Length and Transfer-Encoding');
    if (version === '1.0') throw new Invalid('invalid', 'Transfer-Encoding in HTTP/1.0');
    // Empty list elements are ignored (RFC 9110 §5.6.1.2).
    const codings = te.join(',').split(',').map((s) => s.trim().toLowerCase()).filter(Boolean);
    if (codings.length === 0) throw new Invalid('invalid', 'empty Transfer-Encoding');
    if (codings.some((c) => !TOKEN.test(c))) throw new Invalid('invalid', 'malformed Transfer-Encoding');
    if (codings[codings.length - 1] !== 'chunked') throw new Invalid('invalid', 'Transfer-Encoding does not end in chunked');
    if (codings.filter((c) => c === 'chunked').length > 1) throw new Invalid('invalid', 'chunked applied twice');
    if (codings.length > 1) throw new Invalid('unsupported', `transfer coding ${codings.slice(0, -1).join(', ')}`);
    chunked = true;
    const read = readChunked(bytes, bodyStart);
    if (!read) return null;
    body = read.body;
    next = read.next;
  } else if (cl.length) {
    if (cl.length > 1) throw new Invalid('invalid', 'more than one Content-Length');
    if (!/^[0-9]+$/.test(cl[0])) throw new Invalid('invalid', 'malformed Content-Length');
    const length = BigInt(cl[0]);
    if (BigInt(bytes.length - bodyStart) < length) return null;
    body = bytes.subarray(bodyStart, bodyStart + Number(length));
    next = bodyStart + Number(length);
  } else {
    body = Buffer.alloc(0);
    next = bodyStart;
  }

  const connection = all('connection').join(',').toLowerCase().split(',').map((s) => s.trim());
  const upgrade = connection.includes('upgrade') && all('upgrade').length > 0;
  const last =
    method === 'CONNECT' ||
    upgrade ||
    connection.includes('close') ||
    (version === '1.0' && !connection.includes('keep-alive'));
  return { request: { method, target, version, headers, body, chunked }, next, last };
}

function readChunked(bytes: Buffer, start: number): { body: Buffer; next: number } | null {
  const parts: Buffer[] = [];
  let at = start;
  for (;;) {
    const eol = bytes.indexOf(CRLF, at);
    if (eol < 0) {
      if (!/^[0-9A-Fa-f]{0,16}(?:;[!#$%&'*+\-.^_`|~0-9A-Za-z="\\ \t\x80-\xff;]*)?$/.test(bytes.subarray(at).toString('latin1').replace(/\r$/, ''))) {
        throw new Invalid('invalid', 'bad chunk-size line');
      }
      return null;
    }
    const line = bytes.subarray(at, eol).toString('latin1');
    const m = CHUNK_LINE.exec(line);
    if (!m) throw new Invalid('invalid', `bad chunk-size line ${JSON.stringify(line.slice(0, 40))}`);
    const size = Number.parseInt(m[1], 16);
    if (!Number.isSafeInteger(size)) throw new Invalid('invalid', 'chunk size out of range');
    at = eol + 2;
    if (size === 0) break;
    if (bytes.length < at + size + 2) {
      if (bytes.length >= at + size + 1 && bytes[at + size] !== 0x0d) throw new Invalid('invalid', 'chunk data not followed by CRLF');
      return null;
    }
    if (bytes[at + size] !== 0x0d || bytes[at + size + 1] !== 0x0a) throw new Invalid('invalid', 'chunk data not followed by CRLF');
    parts.push(bytes.subarray(at, at + size));
    at += size + 2;
  }
  // Trailer section: field lines, then an empty line.
  for (;;) {
    const eol = bytes.indexOf(CRLF, at);
    if (eol < 0) return null;
    const line = bytes.subarray(at, eol).toString('latin1');
    at = eol + 2;
    if (line === '') return { body: Buffer.concat(parts), next: at };
    if (/[\r\n]/.test(line)) throw new Invalid('invalid', 'bare CR or LF in trailers');
    const colon = line.indexOf(':');
    if (colon <= 0 || !TOKEN.test(line.slice(0, colon)) || !FIELD_VALUE.test(line.slice(colon + 1).trim())) {
      throw new Invalid('invalid', 'malformed trailer field');
    }
  }
}

const HOP_BY_HOP = new Set(['connection', 'proxy-connection', 'keep-alive', 'te', 'trailer', 'transfer-encoding', 'upgrade', 'proxy-authorization', 'proxy-authenticate']);

/**
 * The end-to-end meaning of a request, as a string: method, absolute target (or '*' when the
 * target is path-style and so rewritten by design), end-to-end fields merged per name, the Via
 * the client sent, and the body. A request and its faithful forwarded copy have the same one.
 */
export function meaning(r: StrictRequest, opts: { forwarded: boolean; originHost?: string }): string | null {
  const lower = (n: string) => n.toLowerCase();
  const values = (n: string) => r.headers.filter(([k]) => lower(k) === n).map(([, v]) => v);
  const connectionTokens = values('connection').join(',').split(',').map((s) => s.trim().toLowerCase()).filter(Boolean);
  const isUpgrade = r.method !== 'CONNECT' && connectionTokens.includes('upgrade') && values('upgrade').length > 0;
  let target: string;
  try {
    if (/^[A-Za-z][A-Za-z0-9+.-]*:\/\//.test(r.target)) {
      const url = new URL(r.target);
      if (url.protocol !== 'http:' && url.protocol !== 'https:') return null;
      target = url.href;
    } else if (opts.forwarded && r.target.startsWith('/')) {
      // What an origin receives in origin-form: rebuild the absolute URL from its Host.
      target = new URL(r.target, `http://${values('host')[0] ?? opts.originHost ?? 'invalid'}`).href;
    } else if (r.target.startsWith('/')) {
      target = '*';
    } else {
      return null;
    }
  } catch {
    return null;
  }
  const merged = new Map<string, string[]>();
  for (const [name, value] of r.headers) {
    const n = lower(name);
    // Expect is answered by the proxy itself (100 Continue) and not forwarded.
    if (n === 'host' || n === 'via' || n === 'content-length' || n === 'expect') continue;
    if (HOP_BY_HOP.has(n) && !(isUpgrade && n === 'upgrade')) continue;
    if (connectionTokens.includes(n)) continue;
    if (!merged.has(n)) merged.set(n, []);
    merged.get(n)!.push(value);
  }
  const fields = [...merged.entries()]
    .map(([n, vs]) => `${n}: ${vs.join(n === 'cookie' ? '; ' : ', ').trim()}`)
    .sort();
  let via = values('via').join(', ');
  if (opts.forwarded) {
    // Strip the hop the proxy added; what is left is what the client sent.
    const m = /(?:^|, )1\.[01] caching-proxy-[0-9a-f]{6}$/.exec(via);
    if (!m) return null;
    via = via.slice(0, m.index);
  }
  return JSON.stringify([r.method, target, isUpgrade, fields, via, r.body.toString('hex')]);
}
