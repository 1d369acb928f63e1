import type { Exchange } from '../core/exchange';
import { responseHasNoBody } from '../core/forward';
import { CorruptEntryError } from './entryMeta';
import { ageAt, type Entry, type LoadedMeta } from './entry';
import { etagMatches, headerValue, rawHeader } from './headers';
import type { CacheReport } from './report';
import type { Store } from './store';

/**
 * Answers a request from a stored entry: from memory, or streamed from its checked file; a
 * client whose copy is current gets a 304, a single byte range a 206.
 */
export class StoredAnswers {
  constructor(
    private readonly store: Store,
    private readonly report: CacheReport,
    /** What to do when an entry turns out to be damaged (it is dropped first): fetch it anew. */
    private readonly recover: (ex: Exchange, entry: Entry) => Promise<void>,
  ) {}

  /** `counted: false` when the request was counted already (a collapsed or deferred miss). */
  async serve(ex: Exchange, entry: Entry, cacheStatus: string, counted = true): Promise<void> {
    const meta = entry.meta!;
    this.report.hit(entry, counted);
    ex.cacheOutcome = cacheStatus;
    if (clientHasCurrentCopy(ex, entry, meta)) return ex.respond(304, undefined, notModifiedHeaders(meta, cacheStatus));
    if (!entry.body && responseHasNoBody(ex.method, entry.status)) {
      // HEAD (or a bodiless status): the headers are all there is to send; no need to read the file.
      return ex.respond(entry.status, meta.statusMessage || undefined, hitHeaders(meta, cacheStatus));
    }
    const range = requestedRange(ex, entry, meta);
    if (range === 'unsatisfiable') return ex.respond(416, undefined, partialHeaders(meta, cacheStatus, `bytes */${entry.size}`, 0));
    let body: Buffer | null;
    try {
      body = await this.store.memoryBody(entry);
    } catch (err) {
      return this.recoverCorrupt(ex, entry, err);
    }
    if (body && range) {
      const part = body.subarray(range.start, range.end + 1);
      return ex.respond(206, undefined, partialHeaders(meta, cacheStatus, `bytes ${range.start}-${range.end}/${entry.size}`, part.length), part);
    }
    if (body) return ex.respond(entry.status, meta.statusMessage || undefined, hitHeaders(meta, cacheStatus), body);
    let handle;
    try {
      handle = await this.store.openBody(entry);
    } catch (err) {
      return this.recoverCorrupt(ex, entry, err);
    }
    if (range) ex.sendHead(206, undefined, partialHeaders(meta, cacheStatus, `bytes ${range.start}-${range.end}/${entry.size}`, range.end - range.start + 1));
    else ex.sendHead(entry.status, meta.statusMessage || undefined, hitHeaders(meta, cacheStatus));
    if (ex.method === 'HEAD' || responseHasNoBody(ex.method, entry.status)) {
      await handle.close();
      return ex.endBody();
    }
    return range ? ex.streamFile(handle, range.start, range.end) : ex.streamFile(handle, 0, entry.size - 1);
  }

  /** The synchronous answer of a fresh in-memory entry (the handler's fast path). */
  serveFromMemory(ex: Exchange, entry: Entry, cacheStatus: string): void {
    this.report.hit(entry);
    ex.cacheOutcome = cacheStatus;
    ex.respond(entry.status, entry.meta!.statusMessage || undefined, hitHeaders(entry.meta!, cacheStatus), entry.body);
  }

  private recoverCorrupt(ex: Exchange, entry: Entry, err: unknown): Promise<void> {
    this.store.drop(entry, 'corrupt', err instanceof CorruptEntryError ? err.reason : String(err));
    return this.recover(ex, entry);
  }
}

/** The header fields every answer from a stored entry carries: the stored ones, Age and Cache-Status. */
function hitHeaders(meta: LoadedMeta, cacheStatus: string): string[] {
  return meta.raw.concat('Age', String(ageAt(meta, Date.now())), 'Cache-Status', 'caching-proxy; ' + cacheStatus);
}

function partialHeaders(meta: LoadedMeta, cacheStatus: string, contentRange: string, length: number): string[] {
  const headers = hitHeaders(meta, cacheStatus);
  const out: string[] = [];
  for (let i = 0; i < headers.length; i += 2) if (headers[i].toLowerCase() !== 'content-length') out.push(headers[i], headers[i + 1]);
  out.push('Content-Range', contentRange, 'Content-Length', String(length));
  return out;
}

/** A 304 carries the stored fields but none that describe a body. */
function notModifiedHeaders(meta: LoadedMeta, cacheStatus: string): string[] {
  const headers = hitHeaders(meta, cacheStatus);
  const out: string[] = [];
  for (let i = 0; i < headers.length; i += 2) {
    const lower = headers[i].toLowerCase();
    if (lower === 'content-length' || lower === 'content-type' || lower === 'content-encoding' || lower === 'content-range') continue;
    out.push(headers[i], headers[i + 1]);
  }
  return out;
}

/** RFC 9110 §13.1: If-None-Match wins over If-Modified-Since. */
function clientHasCurrentCopy(ex: Exchange, entry: Entry, meta: LoadedMeta): boolean {
  if (entry.status !== 200) return false;
  const inm = headerValue(ex.req.headers, 'if-none-match');
  if (inm !== undefined) return etagMatches(inm, rawHeader(meta.raw, 'etag'));
  const ims = headerValue(ex.req.headers, 'if-modified-since');
  const lm = rawHeader(meta.raw, 'last-modified');
  if (ims === undefined || lm === undefined) return false;
  const since = Date.parse(ims);
  const modified = Date.parse(lm);
  return Number.isFinite(since) && Number.isFinite(modified) && modified <= since;
}

/**
 * A single byte range of a stored 200 (RFC 9110 §14): null means "send it all" (no Range, a
 * multi-range or malformed header, or an If-Range that no longer matches).
 */
function requestedRange(ex: Exchange, entry: Entry, meta: LoadedMeta): { start: number; end: number } | 'unsatisfiable' | null {
  const header = headerValue(ex.req.headers, 'range');
  if (header === undefined || ex.method !== 'GET' || entry.status !== 200) return null;
  const ifRange = headerValue(ex.req.headers, 'if-range');
  if (ifRange !== undefined) {
    const etag = rawHeader(meta.raw, 'etag');
    const strongMatch = etag !== undefined && !etag.startsWith('W/') && ifRange.trim() === etag;
    if (!strongMatch && ifRange.trim() !== rawHeader(meta.raw, 'last-modified')) return null;
  }
  const m = /^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$/i.exec(header);
  if (!m || (m[1] === '' && m[2] === '')) return null;
  const size = entry.size;
  let start: number;
  let end: number;
  if (m[1] === '') {
    const suffix = Number(m[2]);
    if (suffix === 0) return 'unsatisfiable';
    start = Math.max(0, size - suffix);
    end = size - 1;
  } else {
    start = Number(m[1]);
    end = m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1);
    if (Number(m[2]) < start && m[2] !== '') return null;
  }
  if (start >= size) return 'unsatisfiable';
  return { start, end };
}
