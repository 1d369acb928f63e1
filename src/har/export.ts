/**
 * Stored entries -> HAR 1.2. Written entry by entry, so a large cache is never one string in
 * memory. Reads through the cache's public operations only (list, read).
 */
import type { CacheEntrySummary, StoredResponse } from '../cache/types';
import { CREATOR, flatHeaders, harHeaders, headerIn, queryStringOf, responseContent, type HarEntry } from './har';

/** What export needs of a cache. */
export interface StoredEntries {
  list(limit?: number): Promise<CacheEntrySummary[]>;
  read(key: string): Promise<StoredResponse | null>;
}

export interface ExportSelection {
  /** A URL pattern: `*` matches any characters and the pattern must match the whole URL; without `*`, the URL must contain it. */
  match?: string;
  /** Only this host (host or host:port). */
  host?: string;
  /** Only this entry. */
  key?: string;
}

export function urlMatcher(pattern: string): (url: string) => boolean {
  if (!pattern.includes('*')) return (url) => url.includes(pattern);
  const re = new RegExp(`^${pattern.split('*').map((part) => part.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('.*')}$`);
  return (url) => re.test(url);
}

export function selected(entries: CacheEntrySummary[], selection: ExportSelection): CacheEntrySummary[] {
  const matches = selection.match === undefined ? null : urlMatcher(selection.match);
  const host = selection.host?.toLowerCase();
  return entries.filter((e) => {
    if (selection.key !== undefined && e.key !== selection.key) return false;
    if (matches && !matches(e.url)) return false;
    if (host !== undefined) {
      const u = new URL(e.url);
      if (u.host !== host && u.hostname !== host) return false;
    }
    return true;
  });
}

/** One stored response as a HAR entry: the request it was stored for, the response, and the cache's metadata. */
export function entryOf(stored: StoredResponse, redact: boolean): HarEntry {
  const { summary } = stored;
  const redacted = new Set<string>();
  const requestRaw = flatHeaders(stored.requestHeaders ?? { host: new URL(summary.url).host });
  const responseRaw = flatHeaders(stored.headers);
  const responseHeaders = harHeaders(responseRaw, redact, redacted);
  const mimeType = headerIn(responseHeaders, 'content-type') ?? '';
  const { content, encodedBody } = responseContent(stored.body, mimeType, headerIn(responseHeaders, 'content-encoding'));
  return {
    startedDateTime: new Date(summary.storedAt).toISOString(),
    time: 0,
    request: {
      method: summary.method,
      url: summary.url,
      httpVersion: 'HTTP/1.1',
      cookies: [],
      headers: harHeaders(requestRaw, redact, redacted),
      queryString: queryStringOf(summary.url),
      headersSize: -1,
      bodySize: 0,
    },
    response: {
      status: summary.status,
      statusText: stored.statusMessage,
      httpVersion: 'HTTP/1.1',
      cookies: [],
      headers: responseHeaders,
      content,
      redirectURL: headerIn(responseHeaders, 'location') ?? '',
      headersSize: -1,
      bodySize: stored.body.length,
    },
    cache: {},
    timings: { send: 0, wait: 0, receive: 0 },
    _cachingProxy: {
      key: summary.key,
      storedAt: summary.storedAt,
      fresh: summary.fresh,
      ttl: summary.ttl,
      hits: summary.hits,
      vary: summary.headers.vary ? summary.headers.vary.toLowerCase().split(',').map((s) => s.trim()).filter(Boolean) : null,
      ...(encodedBody !== undefined ? { encodedBody } : {}),
      ...(redacted.size ? { redacted: [...redacted] } : {}),
    },
  };
}

/**
 * Writes the selected entries as one HAR document through `write` (oldest first); resolves with
 * the number of entries written. Entries that vanish or turn out corrupt meanwhile are left out.
 */
export async function exportHar(cache: StoredEntries, options: ExportSelection & { redact: boolean }, write: (chunk: string) => Promise<void> | void): Promise<number> {
  const entries = selected(await cache.list(Infinity), options).sort((a, b) => a.storedAt - b.storedAt);
  await write(`{"log":{"version":"1.2","creator":${JSON.stringify(CREATOR)},"pages":[],"entries":[`);
  let written = 0;
  for (const summary of entries) {
    const stored = await cache.read(summary.key);
    if (!stored) continue;
    await write(`${written ? ',' : ''}\n${JSON.stringify(entryOf(stored, options.redact))}`);
    written++;
  }
  await write('\n]}}\n');
  return written;
}
