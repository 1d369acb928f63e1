/**
 * HAR 1.2 (http://www.softwareishard.com/blog/har-12-spec/) as this program reads and writes
 * it: the types, header lists, body content, and the redaction of credentials.
 */
import { isUtf8 } from 'node:buffer';
import * as zlib from 'node:zlib';

export interface HarHeader {
  name: string;
  value: string;
  comment?: string;
}

export interface HarContent {
  size: number;
  compression?: number;
  mimeType: string;
  text?: string;
  encoding?: string;
  comment?: string;
}

export interface HarPostData {
  mimeType: string;
  text?: string;
  params?: { name: string; value?: string }[];
  comment?: string;
}

/** What this program adds to an entry (custom fields start with "_"). */
export interface CachingProxyFields {
  /** The cache key (exports). */
  key?: string;
  /** Epoch ms the response was stored or last revalidated (exports). */
  storedAt?: number;
  fresh?: boolean;
  /** Seconds of freshness left when exported; negative when stale. */
  ttl?: number;
  hits?: number;
  /** Request header names the response varies on. */
  vary?: string[] | null;
  /** What the cache did, as in Cache-Status (recordings). */
  cacheStatus?: string;
  /** The body exactly as stored, base64, when content.text holds it decoded (Content-Encoding). */
  encodedBody?: string;
  /** SHA-256 (hex) of the whole request body, even when postData was cut (recordings). */
  requestBodySha256?: string;
  /** The request body as base64 when it is not UTF-8 text (postData has no encoding field). */
  requestBodyBase64?: string;
  /** Bodies of this entry were cut at the size limit, or the exchange broke off. */
  requestBodyTruncated?: boolean;
  responseBodyTruncated?: boolean;
  aborted?: boolean;
  /** Header values replaced by the redaction marker. */
  redacted?: string[];
}

export interface HarRequest {
  method: string;
  url: string;
  httpVersion: string;
  cookies: unknown[];
  headers: HarHeader[];
  queryString: { name: string; value: string }[];
  postData?: HarPostData;
  headersSize: number;
  bodySize: number;
  comment?: string;
}

export interface HarResponse {
  status: number;
  statusText: string;
  httpVersion: string;
  cookies: unknown[];
  headers: HarHeader[];
  content: HarContent;
  redirectURL: string;
  headersSize: number;
  bodySize: number;
  comment?: string;
}

export interface HarEntry {
  startedDateTime: string;
  time: number;
  request: HarRequest;
  response: HarResponse;
  cache: Record<string, unknown>;
  timings: { send: number; wait: number; receive: number; blocked?: number; dns?: number; connect?: number; ssl?: number };
  serverIPAddress?: string;
  comment?: string;
  _cachingProxy?: CachingProxyFields;
}

export interface HarLog {
  log: {
    version: string;
    creator: { name: string; version: string };
    pages?: unknown[];
    entries: HarEntry[];
    comment?: string;
  };
}

declare const __VERSION__: string | undefined;
export const CREATOR = { name: 'caching-proxy', version: typeof __VERSION__ === 'string' ? __VERSION__ : 'dev' };

export const REDACTED = '[redacted by caching-proxy]';
const ALWAYS_REDACTED = new Set(['authorization', 'proxy-authorization', 'cookie', 'set-cookie']);
const LOOKS_LIKE_CREDENTIAL = /token|api[-_]?key|secret/i;

export function isCredentialHeader(name: string): boolean {
  return ALWAYS_REDACTED.has(name.toLowerCase()) || LOOKS_LIKE_CREDENTIAL.test(name);
}

/** [name, value, name, value, ...] as HAR headers; credential values replaced by REDACTED when `redact`, their names added to `redactedNames`. */
export function harHeaders(raw: readonly string[], redact: boolean, redactedNames?: Set<string>): HarHeader[] {
  const out: HarHeader[] = [];
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i];
    if (redact && isCredentialHeader(name)) {
      out.push({ name, value: REDACTED });
      redactedNames?.add(name.toLowerCase());
    } else {
      out.push({ name, value: raw[i + 1] });
    }
  }
  return out;
}

/** A header object (values may be lists) as [name, value, ...]. */
export function flatHeaders(headers: Record<string, string | string[] | number | undefined>): string[] {
  const out: string[] = [];
  for (const name of Object.keys(headers)) {
    const value = headers[name];
    if (value === undefined) continue;
    for (const v of Array.isArray(value) ? value : [value]) out.push(name, String(v));
  }
  return out;
}

/**
 * [name, value, ...] without the Via members this proxy added (`1.1 caching-proxy`): whoever
 * serves the response again adds its own, and a round trip must not pile them up.
 */
export function withoutOwnVia(raw: readonly string[], viaName: string): string[] {
  const own = new RegExp(`^\\s*(HTTP/)?1\\.[01]\\s+${viaName.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\s*$`, 'i');
  const out: string[] = [];
  for (let i = 0; i + 1 < raw.length; i += 2) {
    if (raw[i].toLowerCase() !== 'via') {
      out.push(raw[i], raw[i + 1]);
      continue;
    }
    const kept = raw[i + 1].split(',').filter((member) => !own.test(member));
    if (kept.length) out.push(raw[i], kept.join(',').trim());
  }
  return out;
}

export function headerIn(headers: readonly HarHeader[], name: string): string | undefined {
  const lower = name.toLowerCase();
  return headers.find((h) => h.name.toLowerCase() === lower)?.value;
}

export function queryStringOf(url: string): { name: string; value: string }[] {
  try {
    return [...new URL(url).searchParams].map(([name, value]) => ({ name, value }));
  } catch {
    return [];
  }
}

const TEXT_TYPE = /^(text\/|application\/(json|javascript|ecmascript|xml|x-www-form-urlencoded|graphql|ld\+json|manifest\+json)|image\/svg\+xml|[^;]*\+(json|xml)\b)/i;

/** A body as HAR text: UTF-8 text for textual types, base64 otherwise. */
export function bodyText(body: Buffer, mimeType: string): { text: string; encoding?: 'base64' } {
  if (body.length === 0) return { text: '' };
  if ((TEXT_TYPE.test(mimeType) || mimeType === '') && isUtf8(body)) return { text: body.toString('utf8') };
  return { text: body.toString('base64'), encoding: 'base64' };
}

type Coding = 'gzip' | 'deflate' | 'br';

function codingOf(contentEncoding: string | undefined): Coding | 'identity' | null {
  const v = (contentEncoding ?? '').trim().toLowerCase();
  if (v === '' || v === 'identity') return 'identity';
  if (v === 'gzip' || v === 'x-gzip') return 'gzip';
  if (v === 'deflate') return 'deflate';
  if (v === 'br') return 'br';
  return null;
}

/** The body as HTTP-decoded content (what HAR viewers show); null when the coding is unknown or the body does not decode. */
export function decodeContent(body: Buffer, contentEncoding: string | undefined): Buffer | null {
  const coding = codingOf(contentEncoding);
  if (coding === 'identity') return body;
  try {
    if (coding === 'gzip') return zlib.gunzipSync(body);
    if (coding === 'deflate') return zlib.inflateSync(body);
    if (coding === 'br') return zlib.brotliDecompressSync(body);
  } catch {
    return null;
  }
  return null;
}

/** Decoded content encoded again for a response that says Content-Encoding; null for a coding we cannot produce. */
export function encodeContent(decoded: Buffer, contentEncoding: string | undefined): Buffer | null {
  const coding = codingOf(contentEncoding);
  if (coding === 'identity') return decoded;
  if (coding === 'gzip') return zlib.gzipSync(decoded);
  if (coding === 'deflate') return zlib.deflateSync(decoded);
  if (coding === 'br') return zlib.brotliCompressSync(decoded);
  return null;
}

/**
 * The response content of an entry: decoded text when the body has a Content-Encoding that
 * decodes (the original bytes then kept in _cachingProxy.encodedBody), else the bytes as they are.
 */
export function responseContent(body: Buffer, mimeType: string, contentEncoding: string | undefined): { content: HarContent; encodedBody?: string } {
  const decoded = decodeContent(body, contentEncoding);
  if (decoded !== null && decoded !== body) {
    return { content: { size: decoded.length, compression: decoded.length - body.length, mimeType, ...bodyText(decoded, mimeType) }, encodedBody: body.toString('base64') };
  }
  return { content: { size: body.length, mimeType, ...bodyText(body, mimeType) } };
}

export function emptyLog(comment?: string): HarLog {
  return { log: { version: '1.2', creator: CREATOR, pages: [], entries: [], ...(comment ? { comment } : {}) } };
}
