import { LRUCache } from 'lru-cache';
import type { QuickPassThrough } from '../core/exchange';
import { cacheStatus } from './cacheStatus';
import type { CacheReport } from './report';
import { asksOnlyForStored, plainKey, responseSignature } from './rules';
import type { CacheSettings } from './settings';

/** Why a URL's responses are not stored, and what the response that said so looked like. */
interface UncacheableMark {
  reason: string;
  signature: string;
  /** Plain requests for the URL may take the quick pass-through. */
  quick: boolean;
}

/**
 * URLs whose last response could not be stored (no-store, private, Set-Cookie, too large...).
 * Requests for them do not queue behind one another's fetch, which would serialise an
 * uncacheable API under load (Varnish's "hit-for-miss"); a storable response clears the mark.
 * Plain requests for a marked URL are forwarded by the server's quick pass-through.
 */
export class HitForMiss {
  private readonly marks = new LRUCache<string, UncacheableMark>({ max: 10_000, ttl: 120_000 });

  has(href: string): boolean {
    return this.marks.has(href);
  }

  /** `quick`: requests without credentials may take the quick pass-through (the response did not depend on them). */
  mark(href: string, reason: string, status: number, rawHeaders: string[], quick: boolean): void {
    this.marks.set(href, { reason, signature: responseSignature(status, rawHeaders), quick });
  }

  unmark(href: string): void {
    this.marks.delete(href);
  }

  /** Under new settings (policy, limits, excluded types) what could not be stored may be storable. */
  clear(): void {
    this.marks.clear();
  }

  /**
   * The server's quick pass-through: plain requests for a URL whose last response could not be
   * stored are forwarded without the cache. Should the origin's answer change in what decides
   * storability, the mark goes and the next request takes the ordinary path again.
   */
  quickPass(policyFor: (href: string, headers: Record<string, string>) => CacheSettings['policy'], hasStoredVariant: (href: string) => boolean, report: CacheReport): QuickPassThrough {
    return {
      decide: (request) => {
        if (policyFor(request.href, request.headers) === 'offline' || !asksOnlyForStored(request.headers) || request.headers.authorization !== undefined) return null;
        const mark = this.marks.get(request.href);
        // Stored variants of the URL (Vary): the ordinary path chooses among them.
        if (mark === undefined || !mark.quick || hasStoredVariant(request.href)) return null;
        report.miss(request.href, plainKey(request.href));
        return cacheStatus({ fwd: 'miss', detail: mark.reason });
      },
      responded: (request, status, rawHeaders, lowerNames) => {
        const mark = this.marks.peek(request.href);
        if (mark !== undefined && responseSignature(status, rawHeaders, lowerNames) !== mark.signature) this.marks.delete(request.href);
        report.event('not-stored', request.href, { reason: mark?.reason ?? 'not-storable', status });
      },
    };
  }
}
