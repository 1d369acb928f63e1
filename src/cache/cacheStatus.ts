/**
 * Cache-Status values (RFC 9211), built in one place so every answer spells them the same way.
 * `fwd` says why the origin was asked: miss, vary-miss, stale, request (the client asked for
 * revalidation), method (an unsafe method), bypass.
 */
import { ruleParam } from '../rules/shaping';

export type Forward = 'miss' | 'vary-miss' | 'stale' | 'request' | 'method' | 'bypass';

export interface CacheStatusParts {
  hit?: true;
  fwd?: Forward;
  fwdStatus?: number;
  /** Seconds of freshness left (negative: stale). */
  ttl?: number;
  stored?: true;
  collapsed?: true;
  detail?: string;
  /** The rule whose settings applied (a parameter of our own; RFC 9211 §2.8 lets caches add them). */
  rule?: string | null;
}

/** The parameters, in the RFC's order: `hit; ttl=60`, `fwd=stale; fwd-status=304; ttl=60`. */
export function cacheStatus(p: CacheStatusParts): string {
  const out: string[] = [];
  if (p.hit) out.push('hit');
  if (p.fwd !== undefined) out.push(`fwd=${p.fwd}`);
  if (p.fwdStatus !== undefined) out.push(`fwd-status=${p.fwdStatus}`);
  if (p.ttl !== undefined) out.push(`ttl=${p.ttl}`);
  if (p.stored) out.push('stored');
  if (p.collapsed) out.push('collapsed');
  if (p.detail !== undefined) out.push(`detail=${p.detail}`);
  if (p.rule) out.push(ruleParam(p.rule));
  return out.join('; ');
}

/** A fresh hit: on the hot path, so built without the general builder. */
export function hitStatus(ttl: number, rule?: string): string {
  return rule === undefined ? `hit; ttl=${ttl}` : `hit; ttl=${ttl}; ${ruleParam(rule)}`;
}

/** What an origin answer to a forwarded request is reported with: a miss names no fwd-status. */
export function forwarded(fwd: Forward, status: number): CacheStatusParts {
  return fwd === 'miss' || fwd === 'vary-miss' ? { fwd } : { fwd, fwdStatus: status };
}

/** The header field pair for a response. */
export function cacheStatusField(params: string): string[] {
  return ['Cache-Status', 'caching-proxy; ' + params];
}
