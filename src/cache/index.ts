import type { CacheConfig } from '../core/config';
import { Cache } from './cache';
import type { CacheDeps, HttpCache } from './types';

export type { HttpCache, CacheEntrySummary, StoredResponse, CacheStats } from './types';

/**
 * The RFC 9111 cache in front of the pass-through: a memory tier (hot entries, LRU by bytes)
 * over a disk tier under config.dir (or memory only when dir is null).
 */
export async function createCache(config: CacheConfig, deps: CacheDeps): Promise<HttpCache> {
  const cache = new Cache(config, deps);
  await cache.init();
  return cache;
}
