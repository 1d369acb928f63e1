import type { CacheConfig } from '../core/config';
import type { CacheDeps, HttpCache } from './types';

export type { HttpCache, CacheEntrySummary, StoredResponse, CacheStats } from './types';

/** Placeholder until the cache lands: everything passes through. */
export async function createCache(config: CacheConfig, deps: CacheDeps): Promise<HttpCache> {
  void config;
  return {
    handler: deps.passThrough,
    list: () => [],
    read: async () => null,
    purge: async () => false,
    purgeHost: async () => 0,
    purgeAll: async () => 0,
    revalidate: async () => null,
    stats: () => ({ entries: 0, bytes: 0, memoryBytes: 0, hits: 0, misses: 0 }),
    updateConfig: async () => {},
    close: async () => {},
  };
}
