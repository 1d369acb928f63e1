/**
 * HAR -> cache entries. The whole file is read and checked before anything is stored: a
 * malformed file gets one precise error (which entry, which field) and changes nothing.
 */
import type { ResponseToStore, StoreOutcome } from '../cache/types';
import { VIA_NAME } from '../core/forward';
import { encodeContent, withoutOwnVia, type HarEntry, type HarHeader } from './har';

export class HarFormatError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'HarFormatError';
  }
}

/** One entry of the file, checked: what it asked and what it got. */
export interface ParsedEntry {
  /** Index in log.entries. */
  index: number;
  method: string;
  url: string;
  /** Lower-case names; repeated fields joined with ", ". */
  requestHeaders: Record<string, string>;
  requestBody: Buffer | null;
  /** SHA-256 of the whole request body when the recording says so (postData may have been cut). */
  requestBodySha256?: string;
  status: number;
  statusText: string;
  /** [name, value, ...] without HTTP/2 pseudo-fields. */
  responseHeaders: string[];
  /** The body as sent (Content-Encoding applied), or why it is not in the file. */
  body: Buffer | { missing: string };
}

export interface ImportReport {
  file: string;
  entries: number;
  stored: { index: number; url: string; key: string }[];
  skipped: { index: number; method: string; url: string; reason: string }[];
  /** Entries not stored because a later entry of the file is for the same request (URL and Vary'd fields). */
  replaced: number;
}

/** Entries stored at once: each is a file write and a rename. */
const IMPORT_CONCURRENCY = 8;

const BASE64 = /^[A-Za-z0-9+/\s]*={0,2}\s*$/;

/** Parses and checks a HAR document; throws HarFormatError naming the file, the entry and the field. */
export function parseHar(text: string, file: string): ParsedEntry[] {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    throw new HarFormatError(`${file}: not valid JSON: ${jsonProblem(text, err as Error)}`);
  }
  const fail = (where: string, problem: string): never => {
    throw new HarFormatError(`${file}: ${where}: ${problem}`);
  };
  if (!isObject(doc)) return fail('top level', 'expected an object with a "log"');
  const log = doc.log;
  if (!isObject(log)) return fail('log', 'missing or not an object');
  if (!Array.isArray(log.entries)) return fail('log.entries', 'missing or not an array');
  return log.entries.map((raw: unknown, index: number) => parseEntry(raw, index, (field, problem) => fail(`log.entries[${index}]${field}${describe(raw)}`, problem)));
}

function describe(raw: unknown): string {
  if (!isObject(raw) || !isObject(raw.request)) return '';
  const { method, url } = raw.request;
  return typeof method === 'string' && typeof url === 'string' ? ` (${method} ${url})` : '';
}

function parseEntry(raw: unknown, index: number, fail: (field: string, problem: string) => never): ParsedEntry {
  if (!isObject(raw)) return fail('', 'not an object');
  const request = raw.request;
  const response = raw.response;
  if (!isObject(request)) return fail('.request', 'missing or not an object');
  if (!isObject(response)) return fail('.response', 'missing or not an object');
  if (typeof request.method !== 'string' || !/^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/.test(request.method)) return fail('.request.method', `${JSON.stringify(request.method)} is not an HTTP method`);
  if (typeof request.url !== 'string') return fail('.request.url', 'missing or not a string');
  let url: URL;
  try {
    url = new URL(request.url);
  } catch {
    return fail('.request.url', `${JSON.stringify(request.url)} is not an absolute URL`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return fail('.request.url', `${JSON.stringify(request.url)} is not an http(s) URL`);
  const requestHeaders = headerList(request.headers, (i, problem) => fail(`.request.headers${i}`, problem));
  // Our own Via goes: the cache or the replay adds it again when it serves the response.
  const responseHeaders = withoutOwnVia(headerList(response.headers, (i, problem) => fail(`.response.headers${i}`, problem)), VIA_NAME);
  if (typeof response.status !== 'number' || !Number.isInteger(response.status) || response.status < 0 || response.status > 999) {
    return fail('.response.status', `${JSON.stringify(response.status)} is not a status code`);
  }
  if (response.statusText !== undefined && typeof response.statusText !== 'string') return fail('.response.statusText', 'not a string');
  const content = response.content;
  if (!isObject(content)) return fail('.response.content', 'missing or not an object');
  if (content.text !== undefined && typeof content.text !== 'string') return fail('.response.content.text', 'not a string');
  if (content.size !== undefined && typeof content.size !== 'number') return fail('.response.content.size', `${JSON.stringify(content.size)} is not a number`);
  if (content.encoding !== undefined && content.encoding !== '' && content.encoding !== 'base64') return fail('.response.content.encoding', `${JSON.stringify(content.encoding)} is not supported (only "base64")`);
  if (content.encoding === 'base64' && typeof content.text === 'string' && !BASE64.test(content.text)) return fail('.response.content.text', 'not valid base64 (content.encoding is "base64")');
  const ours = isObject(raw._cachingProxy) ? raw._cachingProxy : {};
  if (ours.encodedBody !== undefined && (typeof ours.encodedBody !== 'string' || !BASE64.test(ours.encodedBody))) return fail('._cachingProxy.encodedBody', 'not a base64 string');
  const postData = request.postData;
  let requestBody: Buffer | null = null;
  if (postData !== undefined) {
    if (!isObject(postData)) return fail('.request.postData', 'not an object');
    if (postData.text !== undefined && typeof postData.text !== 'string') return fail('.request.postData.text', 'not a string');
    if (typeof ours.requestBodyBase64 === 'string') requestBody = Buffer.from(ours.requestBodyBase64, 'base64');
    else if (typeof postData.text === 'string') requestBody = Buffer.from(postData.text, 'utf8');
  }

  const headerRecord: Record<string, string> = {};
  for (let i = 0; i < requestHeaders.length; i += 2) {
    const name = requestHeaders[i].toLowerCase();
    headerRecord[name] = headerRecord[name] === undefined ? requestHeaders[i + 1] : `${headerRecord[name]}, ${requestHeaders[i + 1]}`;
  }
  const entry = raw as unknown as HarEntry;
  return {
    index,
    method: request.method.toUpperCase(),
    url: url.href,
    requestHeaders: headerRecord,
    requestBody,
    requestBodySha256: typeof ours.requestBodySha256 === 'string' ? ours.requestBodySha256 : undefined,
    status: response.status,
    statusText: typeof response.statusText === 'string' ? response.statusText : '',
    responseHeaders,
    body: bodyOf(entry, responseHeaders),
  };
}

/** The body as it went over the wire, from our own copy of it or from the (decoded) content. */
function bodyOf(entry: HarEntry, responseHeaders: string[]): Buffer | { missing: string } {
  const ours = entry._cachingProxy;
  if (ours?.responseBodyTruncated) return { missing: 'the body was cut when it was recorded (over the size limit)' };
  if (ours?.aborted) return { missing: 'the exchange broke off before the response was complete' };
  if (typeof ours?.encodedBody === 'string') return Buffer.from(ours.encodedBody, 'base64');
  const content = entry.response.content;
  if (content.text === undefined) {
    return (content.size ?? 0) > 0 ? { missing: `the body (${content.size} bytes) is not in the file (no content.text)` } : Buffer.alloc(0);
  }
  const decoded = content.encoding === 'base64' ? Buffer.from(content.text, 'base64') : Buffer.from(content.text, 'utf8');
  const coding = valueOf(responseHeaders, 'content-encoding');
  const encoded = encodeContent(decoded, coding);
  return encoded ?? { missing: `Content-Encoding "${coding}" cannot be applied again to the decoded content` };
}

function valueOf(raw: string[], name: string): string | undefined {
  for (let i = 0; i < raw.length; i += 2) if (raw[i].toLowerCase() === name) return raw[i + 1];
  return undefined;
}

function headerList(value: unknown, fail: (index: string, problem: string) => never): string[] {
  if (value === undefined) return [];
  if (!Array.isArray(value)) return fail('', 'not an array');
  const out: string[] = [];
  value.forEach((h: unknown, i: number) => {
    if (!isObject(h) || typeof h.name !== 'string' || h.name === '') fail(`[${i}].name`, 'missing or not a string');
    const header = h as unknown as HarHeader;
    if (typeof header.value !== 'string') fail(`[${i}].value`, `${JSON.stringify(header.value)} is not a string (header "${header.name}")`);
    // HTTP/2 pseudo-fields (:status, :authority) are not header fields of a stored HTTP/1.1 response.
    if (!header.name.startsWith(':')) out.push(header.name, header.value);
  });
  return out;
}

/** Where JSON.parse stopped, as line and column, and whether the file simply ends early. */
function jsonProblem(text: string, err: Error): string {
  const at = /position (\d+)/.exec(err.message);
  if (!at) {
    if (/end of (JSON )?input/i.test(err.message)) return `the file ends early, at line ${lineCol(text, text.length)} (truncated?)`;
    return err.message;
  }
  const pos = Number(at[1]);
  if (pos >= text.trimEnd().length) return `the file ends early, at line ${lineCol(text, pos)} (truncated?)`;
  return `${err.message.replace(/ in JSON at position \d+.*$/, '').replace(/, "[\s\S]*" is not valid JSON$/, '')} at line ${lineCol(text, pos)}`;
}

function lineCol(text: string, pos: number): string {
  const before = text.slice(0, pos);
  const line = before.split('\n').length;
  const col = pos - before.lastIndexOf('\n');
  return `${line}, column ${col}`;
}

function isObject(x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}

/** What import needs of a cache. */
export interface EntrySink {
  storeResponse(response: ResponseToStore): Promise<StoreOutcome>;
}

/** Why an entry cannot become a cache entry before the cache is even asked. */
function unstorable(e: ParsedEntry): string | null {
  if (e.method === 'HEAD') return 'a HEAD response has no body to store (a GET of the URL would have one)';
  if (e.method !== 'GET') return `${e.method} responses are not stored (only GET)`;
  if (e.status < 100) return `no response (status ${e.status}: the request failed or was blocked)`;
  if (!Buffer.isBuffer(e.body)) return e.body.missing;
  return null;
}

/**
 * Reads a HAR document and stores each complete GET response in the cache, keyed with its
 * request's Vary fields. Throws HarFormatError (nothing stored) if any entry is malformed.
 */
export async function importHar(cache: EntrySink, text: string, file: string): Promise<ImportReport> {
  const entries = parseHar(text, file);
  const report: ImportReport = { file, entries: entries.length, stored: [], skipped: [], replaced: 0 };
  // The cache keeps one response per request (URL and the fields its Vary names): the file's last one.
  const last = new Map<string, ParsedEntry>();
  for (const e of entries) {
    const reason = unstorable(e);
    if (reason !== null) report.skipped.push({ index: e.index, method: e.method, url: e.url, reason });
    else last.set(variantOf(e), e);
  }
  const queue = [...last.values()];
  report.replaced = entries.length - report.skipped.length - queue.length;
  const worker = async () => {
    for (let e = queue.shift(); e; e = queue.shift()) {
      const outcome = await cache.storeResponse({
        url: e.url,
        requestHeaders: e.requestHeaders,
        status: e.status,
        statusMessage: e.statusText,
        rawHeaders: e.responseHeaders,
        body: e.body as Buffer,
      });
      if (outcome.stored) report.stored.push({ index: e.index, url: e.url, key: outcome.key });
      else report.skipped.push({ index: e.index, method: e.method, url: e.url, reason: `the cache does not store it: ${outcome.reason}` });
    }
  };
  await Promise.all(Array.from({ length: Math.min(IMPORT_CONCURRENCY, queue.length) }, worker));
  report.stored.sort((a, b) => a.index - b.index);
  report.skipped.sort((a, b) => a.index - b.index);
  return report;
}

/** The request an entry answers, as the cache tells variants apart: URL plus the request values its response's Vary names. */
function variantOf(e: ParsedEntry): string {
  const vary = valueOf(e.responseHeaders, 'vary');
  if (!vary) return e.url;
  const names = vary.toLowerCase().split(',').map((n) => n.trim()).filter(Boolean);
  return e.url + names.map((n) => `\n${n}: ${e.requestHeaders[n] ?? ''}`).join('');
}
