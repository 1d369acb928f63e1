import type { CacheConfig } from '../core/config';
import { contentTypeMatcher } from './headers';

/**
 * The cache settings that apply to one request. Today every request gets the global ones;
 * per-URL rules will pick them here, and nowhere else.
 */
export type CacheSettings = Pick<CacheConfig, 'policy' | 'ttl' | 'admitAfter' | 'maxObjectSizeMB' | 'excludeContentTypes' | 'serveStaleIfOffline' | 'prefetchLinks'>;

export function settingsFor(config: CacheConfig, _href: string): CacheSettings {
  return config;
}

const matchers = new WeakMap<string[], (contentType: string | undefined) => boolean>();

/** Whether settings exclude a content type from the cache (the matcher built once per list). */
export function excludesType(settings: CacheSettings, contentType: string | undefined): boolean {
  let matcher = matchers.get(settings.excludeContentTypes);
  if (matcher === undefined) matchers.set(settings.excludeContentTypes, (matcher = contentTypeMatcher(settings.excludeContentTypes)));
  return matcher(contentType);
}
