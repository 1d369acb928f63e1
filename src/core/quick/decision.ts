import { ORDINARY, type QuickDecision } from './lane';
import { isPlainRequest, type QuickRequest } from './request';

/**
 * What a cache lets the quick path see of a request, without changing anything. The answers
 * are the cache's (policy, rules, store, hit-for-miss marks); the choice among them is here.
 */
export interface QuickView<Stored> {
  /**
   * 'serve': stored responses may answer it at once; 'forward-only': they may not, but it may be
   * forwarded when the URL is marked; 'ordinary': neither (the cache is offline for it).
   */
  mode(request: QuickRequest): 'serve' | 'forward-only' | 'ordinary';
  /** A fresh entry in memory that may answer the request as it is, or null. */
  fresh(request: QuickRequest): Stored | null;
  /** The Cache-Status parameters for forwarding a request for this URL (its responses are not stored), or null. */
  unstored(request: QuickRequest): string | null;
}

/**
 * The quick path's decision for a plain request, a pure function of the request and what the
 * view reports: answer from memory, forward to the origin (hit-for-miss), or the ordinary path.
 * Requests with credentials are never forwarded this way: the mark that says "not stored" was
 * made by a response that may not have depended on them.
 */
export function decideQuick<Stored>(request: QuickRequest, view: QuickView<Stored>): QuickDecision<Stored> {
  if (!isPlainRequest(request.method, request.headers)) return ORDINARY;
  const mode = view.mode(request);
  if (mode === 'ordinary') return ORDINARY;
  if (mode === 'serve') {
    const stored = view.fresh(request);
    if (stored !== null) return { kind: 'answer', stored };
  }
  if (request.headers.authorization !== undefined) return ORDINARY;
  const cacheStatus = view.unstored(request);
  return cacheStatus === null ? ORDINARY : { kind: 'forward', cacheStatus };
}
