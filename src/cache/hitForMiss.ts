import { LRUCache } from 'lru-cache';
import { cacheStatus } from './cacheStatus';
import type { CacheReport } from './report';
import { responseSignature } from './rules';

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
   * The Cache-Status parameters for forwarding a plain request for `href` on the server's quick
   * pass-through, or null: only a URL whose last response could not be stored (and did not
   * depend on credentials) is forwarded without the cache. Looks only (no recency update).
   */
  quickForward(href: string): string | null {
    const mark = this.marks.peek(href);
    return mark === undefined || !mark.quick ? null : cacheStatus({ fwd: 'miss', detail: mark.reason });
  }

  /** A plain request for `href` is being forwarded: its mark is the most recently used. */
  used(href: string): void {
    this.marks.get(href);
  }

  /** The origin's answer to a quick pass-through: should it differ in what decides storability, the mark goes and the next request takes the ordinary path again. */
  responded(href: string, status: number, rawHeaders: string[], lowerNames: string[], report: CacheReport): void {
    const mark = this.marks.peek(href);
    if (mark !== undefined && responseSignature(status, rawHeaders, lowerNames) !== mark.signature) this.marks.delete(href);
    report.notStoredInResponse(href, mark?.reason ?? 'not-storable', status);
  }
}
