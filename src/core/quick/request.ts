import type { IncomingHttpHeaders } from 'node:http';

/**
 * What a plain request is, and the strict reader behind the server's quick path. Node's HTTP
 * server costs a parser callback, an IncomingMessage and a ServerResponse per request, about as much as a whole cache hit; for
 * the plainest requests (a GET or HEAD of an absolute http URL, read in one chunk) the server
 * reads the head here instead and the quick lane decides (see lane.ts).
 *
 * This reader never rejects anything. Whatever it does not fully understand (another method or
 * version, a body, a folded or repeated field, a control character, a partial or pipelined head)
 * it declines, and the connection goes to Node's parser, which answers it the ordinary way.
 */

/**
 * A request the server read without Node's HTTP parser: GET or HEAD, an absolute http URL,
 * HTTP/1.1, no body, each header field once, nothing that changes framing (parseSimpleRequest).
 */
export interface QuickRequest {
  method: 'GET' | 'HEAD';
  /** The normalised absolute URL, as `new URL(target).href` gives it. */
  href: string;
  /** Lower-case names, one value each. */
  headers: Record<string, string>;
}

/**
 * The one check of what a plain request is: a GET or HEAD without a body that asks for nothing
 * but a stored response (no directives, validators or ranges of its own). Only plain requests
 * are answered from memory at once or forwarded on the quick path; every place that asks, asks here.
 */
export function isPlainRequest(method: string, h: IncomingHttpHeaders | Record<string, string>): boolean {
  return (
    (method === 'GET' || method === 'HEAD') &&
    h['cache-control'] === undefined &&
    h.pragma === undefined &&
    h['if-none-match'] === undefined &&
    h['if-modified-since'] === undefined &&
    h.range === undefined &&
    h['transfer-encoding'] === undefined &&
    (h['content-length'] === undefined || h['content-length'] === '0')
  );
}

export interface SimpleRequestHead {
  method: 'GET' | 'HEAD';
  /** The absolute-form target as sent, e.g. http://example.com/a?b. */
  target: string;
  /** plainPathStart of the target: the index of the slash that starts its path if `new URL` keeps path and query as sent, else -1. */
  pathStart: number;
  /** Lower-case names, one value each, surrounding whitespace removed. */
  headers: Record<string, string>;
}

/**
 * One byte's class in a head, by code: the bits say what it may be. A field name is tchar
 * (RFC 9110 5.6.2); a field value is HTAB, SP, visible ASCII or obs-text (0x80-0xff); a target
 * is visible ASCII (0x21-0x7e). Every other byte (CR and LF outside a line's CRLF, another
 * control, DEL) is none of them.
 */
const TCHAR = 1;
const UPPER = 2;
const VALUE = 4;
const TARGET = 8;
const CLASS = new Uint8Array(256);
for (let c = 0; c < 256; c++) {
  const visible = c >= 0x21 && c <= 0x7e;
  const tchar = (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a) || "!#$%&'*+-.^_`|~".includes(String.fromCharCode(c));
  CLASS[c] = (tchar ? TCHAR : 0) | (c >= 0x41 && c <= 0x5a ? UPPER : 0) | (visible || c === 0x09 || c === 0x20 || c >= 0x80 ? VALUE : 0) | (visible ? TARGET : 0);
}

const CR = 0x0d;
const LF = 0x0a;
const SP = 0x20;
const HTAB = 0x09;
const COLON = 0x3a;

/** `http://` as bytes, after the method and its space. */
const HTTP_SCHEME = [0x68, 0x74, 0x74, 0x70, 0x3a, 0x2f, 0x2f];
/** ` HTTP/1.1` and the request line's CRLF. */
const HTTP_VERSION = [SP, 0x48, 0x54, 0x54, 0x50, 0x2f, 0x31, 0x2e, 0x31, CR, LF];

/** Fields that change how the message is framed or carried: such requests take Node's parser. */
const FRAMING = new Set(['content-length', 'transfer-encoding', 'upgrade', 'expect', 'te', 'trailer']);

/** Names most requests send, by length: one with capitals is given as the constant, not lower-cased anew. */
const KNOWN: (readonly [string, Buffer])[][] = [];
for (const name of ['host', 'user-agent', 'accept', 'accept-encoding', 'accept-language', 'connection', 'proxy-connection', 'via', 'authorization', 'proxy-authorization', 'cache-control', 'pragma', 'if-none-match', 'if-modified-since', 'range', 'cookie', 'referer', 'origin']) {
  (KNOWN[name.length] ??= []).push([name, Buffer.from(name, 'latin1')]);
}

/**
 * The known name that the tchar bytes chunk[start, end) spell in any case, or null. Each known
 * name is letters and '-', so `byte | 0x20` equals its byte only for that byte or its capital.
 */
function knownName(chunk: Buffer, start: number, end: number): string | null {
  const list = KNOWN[end - start];
  if (list === undefined) return null;
  next: for (let i = 0; i < list.length; i++) {
    const bytes = list[i][1];
    for (let k = 0; k < bytes.length; k++) if ((chunk[start + k] | 0x20) !== bytes[k]) continue next;
    return list[i][0];
  }
  return null;
}

/**
 * Reads `chunk` as exactly one complete request head of the simple kind, or returns null.
 * Null means "not for the quick path", never "malformed".
 *
 * One pass over the bytes, no regular expression and no array of lines. The head must be
 *   (GET|HEAD) SP http://<visible ASCII>+ SP HTTP/1.1 CRLF
 *   (<tchar>+ ":" <value> CRLF)+
 *   CRLF
 * and end the chunk: no body bytes, no pipelined request behind it. CR and LF appear only as
 * a line's CRLF, so an empty line before the last, a bare CR or LF, an obs-fold (a line that
 * starts with SP or HTAB) or a control character in a value all decline. A value is what
 * follows the colon without the SP and HTAB around it.
 */
export function parseSimpleRequest(chunk: Buffer, maxHeadBytes: number): SimpleRequestHead | null {
  const length = chunk.length;
  if (length < 20 || length > maxHeadBytes) return null;
  if (chunk[length - 4] !== CR || chunk[length - 3] !== LF || chunk[length - 2] !== CR || chunk[length - 1] !== LF) return null;
  let method: 'GET' | 'HEAD';
  let at: number;
  if (chunk[0] === 0x47 && chunk[1] === 0x45 && chunk[2] === 0x54 && chunk[3] === SP) {
    method = 'GET';
    at = 4;
  } else if (chunk[0] === 0x48 && chunk[1] === 0x45 && chunk[2] === 0x41 && chunk[3] === 0x44 && chunk[4] === SP) {
    method = 'HEAD';
    at = 5;
  } else return null;
  for (let k = 0; k < 7; k++) if (chunk[at + k] !== HTTP_SCHEME[k]) return null;
  const targetStart = at;
  at += 7;
  while (at < length && (CLASS[chunk[at]] & TARGET) !== 0) at++;
  if (at === targetStart + 7 || at + 11 > length) return null;
  const targetEnd = at;
  for (let k = 0; k < 11; k++) if (chunk[at + k] !== HTTP_VERSION[k]) return null;
  at += 11;
  // Every string below is a slice of this one (latin1: one character a byte, as Node's parser reads a head).
  const text = chunk.toString('latin1', 0, length - 4);
  const headers: Record<string, string> = {};
  const last = length - 2;
  while (at < last) {
    const nameStart = at;
    let seen = 0;
    let c = chunk[at];
    while ((CLASS[c] & TCHAR) !== 0) {
      seen |= CLASS[c];
      c = chunk[++at];
    }
    if (at === nameStart || c !== COLON) return null;
    const nameEnd = at;
    c = chunk[++at];
    while (c === SP || c === HTAB) c = chunk[++at];
    const valueStart = at;
    while ((CLASS[c] & VALUE) !== 0) c = chunk[++at];
    // The value ends at its line's CRLF (the head's last CRLF is at `last`, so `at + 1` is in the chunk).
    if (c !== CR || chunk[at + 1] !== LF) return null;
    let valueEnd = at;
    while (valueEnd > valueStart && ((c = chunk[valueEnd - 1]) === SP || c === HTAB)) valueEnd--;
    at += 2;
    const name = (seen & UPPER) === 0 ? text.slice(nameStart, nameEnd) : (knownName(chunk, nameStart, nameEnd) ?? text.slice(nameStart, nameEnd).toLowerCase());
    if (headers[name] !== undefined || FRAMING.has(name)) return null;
    const value = text.slice(valueStart, valueEnd);
    if ((name === 'connection' || name === 'proxy-connection') && value !== 'keep-alive' && value.toLowerCase() !== 'keep-alive') return null;
    headers[name] = value;
  }
  if (headers.host === undefined) return null;
  return { method, target: text.slice(targetStart, targetEnd), pathStart: plainPathStart(chunk, targetStart, targetEnd), headers };
}

/**
 * The characters `new URL` keeps as they are in a path or a query, by code: unreserved, the
 * sub-delims but "'", ':', '@', '/' and '?'. Not '%', '\\', '#', quotes, spaces, or anything else
 * it would percent-encode or rewrite.
 */
const PLAIN = new Uint8Array(256);
for (const c of "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~!$&()*+,;=:@/?") PLAIN[c.charCodeAt(0)] = 1;
const SLASH = 0x2f;
const DOT = 0x2e;
const QUESTION = 0x3f;

/**
 * For an absolute `http://` target, the bytes chunk[start, end), whose path and query `new URL`
 * leaves as they are (no character it would escape, no dot segment), the index in the target
 * of the slash that starts the path; otherwise -1. Its href is then `http://`, the authority as
 * `new URL` writes it, and the rest of the target as sent. The authority (checked later, by
 * parsing it alone) is anything up to that slash without '?', '#' or '\\'; a dot segment is
 * "/." or "/.." before '/', '?' or the end, in the path or the query.
 */
export function plainPathStart(chunk: Buffer, start = 0, end = chunk.length): number {
  if (end - start < 8) return -1;
  for (let k = 0; k < 7; k++) if (chunk[start + k] !== HTTP_SCHEME[k]) return -1;
  let slash = start + 7;
  for (; slash < end; slash++) {
    const c = chunk[slash];
    if (c === SLASH) break;
    if (c === QUESTION || c === 0x23 || c === 0x5c) return -1;
  }
  if (slash === start + 7 || slash === end) return -1;
  for (let i = slash; i < end; i++) {
    const c = chunk[i];
    if (PLAIN[c] === 0) return -1;
    if (c === SLASH && i + 1 < end && chunk[i + 1] === DOT) {
      let j = i + 2;
      if (j < end && chunk[j] === DOT) j++;
      if (j === end || chunk[j] === SLASH || chunk[j] === QUESTION) return -1;
    }
  }
  return slash - start;
}
