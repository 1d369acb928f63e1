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
  /** Lower-case names, one value each, surrounding whitespace removed. */
  headers: Record<string, string>;
}

const REQUEST_LINE = /^(GET|HEAD) (http:\/\/[!-~]+) HTTP\/1\.1$/;
const FIELD_LINE = /^([!#$%&'*+\-.^_`|~0-9A-Za-z]+):[ \t]*(.*?)[ \t]*$/;
/** Any control character but HTAB, and any CR or LF that is not part of a CRLF. */
const STRAY_CONTROL = /[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]|\r(?!\n)|(?<!\r)\n/;
const CRLF_CRLF = Buffer.from('\r\n\r\n');

/** Fields that change how the message is framed or carried: such requests take Node's parser. */
const FRAMING = new Set(['content-length', 'transfer-encoding', 'upgrade', 'expect', 'te', 'trailer']);

/**
 * Reads `chunk` as exactly one complete request head of the simple kind, or returns null.
 * Null means "not for the quick path", never "malformed".
 */
export function parseSimpleRequest(chunk: Buffer, maxHeadBytes: number): SimpleRequestHead | null {
  const length = chunk.length;
  if (length < 20 || length > maxHeadBytes) return null;
  // Exactly one head, ending the chunk: no body bytes, no pipelined request behind it.
  if (chunk.indexOf(CRLF_CRLF) !== length - 4) return null;
  const text = chunk.toString('latin1', 0, length - 4);
  if (STRAY_CONTROL.test(text)) return null;
  const lines = text.split('\r\n');
  const requestLine = REQUEST_LINE.exec(lines[0]);
  if (requestLine === null) return null;
  const headers: Record<string, string> = {};
  for (let i = 1; i < lines.length; i++) {
    const field = FIELD_LINE.exec(lines[i]);
    if (field === null) return null;
    const name = field[1].toLowerCase();
    if (headers[name] !== undefined || FRAMING.has(name)) return null;
    const value = field[2];
    if ((name === 'connection' || name === 'proxy-connection') && value.toLowerCase() !== 'keep-alive') return null;
    headers[name] = value;
  }
  if (headers.host === undefined) return null;
  return { method: requestLine[1] as 'GET' | 'HEAD', target: requestLine[2], headers };
}

/**
 * An authority (checked later, by parsing it alone) and a path and query that `new URL` keeps
 * as they are: no character it would percent-encode, no '%', '\\' or '#'.
 */
const PLAIN_TARGET = /^http:\/\/[^/?#\\]+\/[A-Za-z0-9\-._~!$&()*+,;=:@/]*(?:\?[A-Za-z0-9\-._~!$&()*+,;=:@/?]*)?$/;
const DOT_SEGMENT = /\/\.{1,2}(?:[/?]|$)/;

/**
 * For an absolute `http://` target whose path and query `new URL` leaves as they are (no
 * character it would escape, no dot segment), the index of the slash that starts the path;
 * otherwise -1. Its href is then `http://`, the authority as `new URL` writes it, and the rest
 * of the target as sent.
 */
export function plainPathStart(target: string): number {
  if (!PLAIN_TARGET.test(target)) return -1;
  const slash = target.indexOf('/', 7);
  return DOT_SEGMENT.test(target.slice(slash)) ? -1 : slash;
}
