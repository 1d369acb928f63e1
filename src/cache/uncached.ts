import { ProxyError, type Exchange, type Origin } from '../core/exchange';
import { fetchAsIs } from '../core/forward';
import { cacheStatus, cacheStatusField } from './cacheStatus';
import { invalidatesStored, sameOriginTargets } from './rules';
import type { Store } from './store';

/** Requests the cache passes on without storing, and the ones it refuses itself. */

/** Forwards the client's request as it is; the response is relayed, not stored. */
export async function bypass(origin: Origin, ex: Exchange, value: string): Promise<void> {
  ex.cacheOutcome = value;
  const upstream = await fetchAsIs(origin, ex);
  return ex.relay(upstream, cacheStatusField(value));
}

/** Unsafe methods go to the origin; a success invalidates the URL and its same-origin Location / Content-Location. */
export async function forwardUnsafe(origin: Origin, store: Store, ex: Exchange): Promise<void> {
  const value = cacheStatus({ fwd: 'method' });
  ex.cacheOutcome = value;
  const upstream = await fetchAsIs(origin, ex);
  const status = upstream.statusCode ?? 502;
  if (invalidatesStored(ex.method, status)) {
    await store.dropUrl(ex.url.href, 'invalidated', `${ex.method} ${status}`);
    for (const target of sameOriginTargets(ex.url, upstream.rawHeaders)) {
      await store.dropUrl(target.href, 'invalidated', `${target.name} of ${ex.method} ${ex.url.href}`);
    }
  }
  return ex.relay(upstream, cacheStatusField(value));
}

/** A request the cache must answer and cannot (offline, only-if-cached): 504. */
export function gatewayTimeout(ex: Exchange, value: string, message: string): never {
  ex.cacheOutcome = value;
  throw new ProxyError(504, message, 'CACHE_MISS');
}
