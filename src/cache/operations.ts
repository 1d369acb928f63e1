import { CorruptEntryError } from './entryMeta';
import { isFresh, ttlSeconds, type Entry } from './entry';
import { rawHeader } from './headers';
import type { CacheReport } from './report';
import type { Store } from './store';
import type { CacheEntrySummary, CacheStats, StoredResponse } from './types';

/** What the UI asks of the store: listing, reading, purging. Plain data out, for the IPC boundary. */

const SUMMARY_HEADERS = ['etag', 'last-modified', 'cache-control', 'expires', 'vary', 'content-type', 'content-encoding'];

/** `rule`: the rule the entry is stored under, if any (see Cache.ruleOf). */
export function summarise(entry: Entry, rule?: string): CacheEntrySummary {
  const headers: Record<string, string> = {};
  if (entry.meta) {
    for (const name of SUMMARY_HEADERS) {
      const v = rawHeader(entry.meta.raw, name);
      if (v !== undefined) headers[name] = v;
    }
  }
  return {
    key: entry.key,
    url: entry.url,
    method: 'GET',
    status: entry.status,
    size: entry.size,
    storedAt: entry.storedAt,
    ttl: ttlSeconds(entry),
    fresh: isFresh(entry),
    hits: entry.hits,
    contentType: entry.contentType,
    headers,
    ...(rule === undefined ? {} : { rule }),
  };
}

/** Most recently used first; at most `limit` (the UI's default: LIST_LIMIT). `ruleOf`: the rule each entry is stored under. */
export async function listEntries(store: Store, ruleOf: (entry: Entry) => string | undefined, limit?: number): Promise<CacheEntrySummary[]> {
  return (await store.list(limit)).map((entry) => summarise(entry, ruleOf(entry)));
}

export async function readEntry(store: Store, key: string): Promise<StoredResponse | null> {
  const entry = await store.find(key, false);
  if (!entry) return null;
  const meta = await store.load(entry);
  if (!meta) return null;
  let body: Buffer;
  try {
    body = await store.wholeBody(entry);
  } catch (err) {
    store.drop(entry, 'corrupt', err instanceof CorruptEntryError ? err.reason : String(err));
    return null;
  }
  const headers: Record<string, string | string[]> = {};
  for (let i = 0; i < meta.raw.length; i += 2) {
    const name = meta.raw[i];
    const prev = headers[name];
    headers[name] = prev === undefined ? meta.raw[i + 1] : ([] as string[]).concat(prev, meta.raw[i + 1]);
  }
  return { summary: summarise(entry), statusMessage: meta.statusMessage, headers, body, requestHeaders: meta.requestHeaders };
}

export async function purgeEntry(store: Store, key: string): Promise<boolean> {
  const entry = await store.find(key, false);
  if (!entry) return false;
  store.drop(entry, 'purged', 'purged');
  await store.flush();
  return true;
}

export async function purgeHost(store: Store, host: string): Promise<number> {
  const wanted = host.toLowerCase();
  const n = await store.dropWhere(
    (url) => {
      const u = new URL(url);
      return u.host === wanted || u.hostname === wanted;
    },
    'purged',
    `host ${host}`,
  );
  await store.flush();
  return n;
}

export async function purgeAll(store: Store, report: CacheReport): Promise<number> {
  const n = await store.dropAll();
  if (n) report.event('purged', '*', { reason: `all ${n} entries` });
  await store.flush();
  return n;
}

export function cacheStats(store: Store, report: CacheReport): CacheStats {
  return { entries: store.size, bytes: store.bytes, memoryBytes: store.memoryBytes, hits: report.hits, misses: report.misses };
}
