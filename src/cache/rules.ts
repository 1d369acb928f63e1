import type { IncomingHttpHeaders } from 'node:http';
import { IMMUTABLE_DEFAULT_TTL } from '../rules/spec';
import { lowerDirectiveNames, normalisedResponse } from './fieldValues';
import { headerValue, parseCacheControl, rawHeader } from './headers';
import type { CacheSettings } from './settings';
import { excludesType } from './settings';
import { newPolicy, type Policy } from './semantics';

/**
 * The caching rules (RFC 9111 and ours), each a small named question. The RFC's own rules come
 * from http-cache-semantics; these decide what it does not.
 */

const MiB = 1024 * 1024;
/** Methods registered as safe (RFC 9110 §9.2.1, the IANA method registry); every other one may change the resource. */
const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE', 'PROPFIND', 'REPORT', 'SEARCH', 'QUERY']);

/** No validators of the client's own (it has no copy we must compare against). */
export function isUnconditional(h: IncomingHttpHeaders): boolean {
  return h['if-none-match'] === undefined && h['if-modified-since'] === undefined;
}

/** RFC 9111 §4.4: a non-error response to a method not known as safe invalidates what is stored for its URL. */
export function invalidatesStored(method: string, status: number): boolean {
  return !SAFE_METHODS.has(method) && status >= 200 && status < 400;
}

/** The same-origin URLs a response's Location and Content-Location name (also invalidated, §4.4). */
export function sameOriginTargets(url: URL, rawHeaders: string[]): Array<{ name: string; href: string }> {
  const out: Array<{ name: string; href: string }> = [];
  for (const name of ['location', 'content-location']) {
    const value = rawHeader(rawHeaders, name);
    if (!value) continue;
    try {
      const target = new URL(value, url);
      if (target.origin === url.origin) out.push({ name, href: target.href });
    } catch {
      // Not a URL: nothing to invalidate.
    }
  }
  return out;
}

const SIGNATURE_VALUES = new Set(['cache-control', 'pragma', 'vary', 'content-type']);
const SIGNATURE_PRESENCE = new Set(['expires', 'last-modified', 'etag', 'set-cookie', 'authorization']);

/** What of a response decides whether it can be stored: status, directives, and which validators it has. `lower`: the names in lower case, if known. */
export function responseSignature(status: number, raw: string[], lower?: string[]): string {
  let signature = String(status);
  for (let i = 0; i < raw.length; i += 2) {
    const name = lower === undefined ? raw[i].toLowerCase() : lower[i >> 1];
    if (SIGNATURE_VALUES.has(name)) signature += `\n${name}: ${raw[i + 1]}`;
    else if (SIGNATURE_PRESENCE.has(name)) signature += `\n${name}`;
  }
  return signature;
}

/** The request header names a response varies on, lower-cased; null without Vary. */
export function varyOf(headers: Record<string, string | string[]>): string[] | null {
  const vary = typeof headers.vary === 'string' ? headers.vary : undefined;
  return vary ? vary.toLowerCase().split(',').map((s) => s.trim()).filter(Boolean) : null;
}

/** Key of the one variant a URL without Vary has. */
export function plainKey(href: string): string {
  return 'GET ' + href;
}

/** Key of one variant: method + URL + the values of the request headers the response varies on. */
export function variantKey(href: string, vary: string[], headers: IncomingHttpHeaders): string {
  let key = 'GET ' + href;
  for (const name of vary) key += `\n${name}: ${varyValue(headers, name) ?? ''}`;
  return key;
}

/**
 * A request field's value as Vary matching compares it. Accept-Encoding and Accept-Language
 * are normalised (browsers and tools spell the same preference differently: `gzip, br` and
 * `br,gzip`), so one variant serves them all; other fields are compared as sent.
 */
export function varyValue(headers: IncomingHttpHeaders, name: string): string | undefined {
  const value = headerValue(headers, name);
  if (value === undefined) return undefined;
  if (name === 'accept-encoding') {
    const codings = new Set<string>();
    for (const part of value.toLowerCase().split(',')) {
      const [coding, ...params] = part.split(';').map((s) => s.trim());
      // q=0 means "not acceptable": as if it were not listed.
      if (coding && !params.some((p) => /^q\s*=\s*0(\.0*)?$/.test(p))) codings.add(coding);
    }
    return [...codings].sort().join(',');
  }
  if (name === 'accept-language') return value.toLowerCase().replace(/\s+/g, '');
  return value;
}

/** The request as the policy sees it: only what RFC 9111 consults, so no cookies end up in metadata. */
export function policyRequestHeaders(url: URL, h: IncomingHttpHeaders, vary: string[] | null): IncomingHttpHeaders {
  const out: IncomingHttpHeaders = { host: url.host };
  if (h['cache-control'] !== undefined) out['cache-control'] = lowerDirectiveNames(headerValue(h, 'cache-control')!);
  if (h.pragma !== undefined) out.pragma = lowerDirectiveNames(h.pragma);
  if (h.authorization !== undefined) out.authorization = 'present';
  if (vary) for (const name of vary) if (h[name] !== undefined) out[name] = varyValue(h, name);
  return out;
}

/** The request headers kept with an entry (host + Vary-named), for revalidating it without a client. */
export function entryRequestHeaders(policyHeaders: IncomingHttpHeaders): Record<string, string> {
  const out: Record<string, string> = {};
  for (const k in policyHeaders) if (k !== 'cache-control' && k !== 'pragma' && k !== 'authorization') out[k] = String(policyHeaders[k]);
  return out;
}

export function maxObjectBytes(settings: CacheSettings, capacity: number): number {
  return Math.min(Math.floor(settings.maxObjectSizeMB * MiB), capacity);
}

/** Why a response is not stored whatever its policy says (our limits), or null. */
export function limitRefuses(
  settings: CacheSettings,
  headers: Record<string, string | string[]>,
  vary: string[] | null,
  capacity: number,
): string | null {
  if (vary?.includes('*') && settings.policy !== 'always') return 'vary-star';
  if (excludesType(settings, typeof headers['content-type'] === 'string' ? headers['content-type'] : undefined)) return 'excluded-type';
  const declared = Number(headers['content-length']);
  if (Number.isFinite(declared) && declared > maxObjectBytes(settings, capacity)) return 'too-large';
  if (capacity <= 0) return 'no-capacity';
  return null;
}

export type StoreDecision = { policy: Policy; reason?: undefined } | { reason: string; policy?: undefined };

/** The lifetime of everything under `always` when `ttl` is not set. */
export const ALWAYS_DEFAULT_TTL = 300;

/** RFC 9110 §15.1: the status codes a cache may give heuristic freshness. */
const HEURISTICALLY_CACHEABLE = new Set([200, 203, 204, 206, 300, 301, 308, 404, 405, 410, 414, 501]);

/** The final status codes http-cache-semantics understands; the ones it does not are still ours to store with explicit freshness. */
const LIBRARY_UNDERSTOOD = new Set([200, 203, 204, 300, 301, 302, 303, 307, 308, 404, 405, 410, 414, 501]);

/**
 * Final status codes the cache stores when the response states its freshness: all but a
 * partial response (206: it would need range assembly), 304 (never a stored response itself)
 * and 407 (about the hop to an upstream proxy).
 */
function understood(status: number): boolean {
  return status >= 200 && status < 600 && status !== 206 && status !== 304 && status !== 407;
}

/**
 * The policy for a response about to be stored, or why it is not stored. RFC 9111 rules come
 * from http-cache-semantics. Without stated freshness a response gets the RFC heuristic (only
 * for the status codes RFC 9110 allows it for), or `ttl` when the user set one; under
 * `always`, `ttl` is the lifetime of everything.
 */
export function storeDecision(
  settings: CacheSettings,
  href: string,
  requestHeaders: IncomingHttpHeaders,
  status: number,
  received: Record<string, string | string[]>,
): StoreDecision {
  const req = { url: href, method: 'GET', headers: requestHeaders };
  const headers = normalisedResponse(received);
  if (settings.policy === 'always') return forcedLifetime(settings, req, status, headers);
  if (settings.policy === 'immutable') {
    const standard = { ...settings, policy: 'standard' as const };
    // Not the artifact (a 404 before it is published, a redirect): stored only as the origin says, never pinned by the rule's lifetime.
    if (status !== 200) return storeDecision({ ...standard, ttl: null }, href, requestHeaders, status, headers);
    return storeDecision(standard, href, requestHeaders, status, immutableHeaders(headers, settings.ttl ?? IMMUTABLE_DEFAULT_TTL));
  }
  const shared = settings.policy !== 'private';
  const cc = parseCacheControl(headers['cache-control']);
  const explicit = statesFreshness(shared, cc, headers);
  const options = { shared, immutableMinTimeToLive: 24 * 3600 * 1000, cacheHeuristic: HEURISTICALLY_CACHEABLE.has(status) ? 0.1 : 0 };
  // The library judges storability by its own list of status codes; with stated freshness the code only has to be one we understand.
  const judgedStatus = !LIBRARY_UNDERSTOOD.has(status) && explicit && understood(status) ? 200 : status;
  const policy = newPolicy(req, { status: judgedStatus, headers }, options);
  if (!policy.storable()) return { reason: unstorableReason(shared, cc, requestHeaders, status) };
  if (shared && headers['set-cookie'] && !cc.has('public') && !cc.has('immutable')) {
    // Storable by the letter of RFC 9111, but one user's cookie must not be handed to another.
    return { reason: 'set-cookie' };
  }
  if (settings.ttl !== null && !explicit && !forbidsReuse(cc, headers)) {
    const withTtl = { ...headers, 'cache-control': [headers['cache-control'], `max-age=${Math.floor(settings.ttl)}`].filter(Boolean).join(', ') };
    return { policy: newPolicy(req, { status: judgedStatus, headers: withTtl }, options) };
  }
  return { policy };
}

/** Directives about freshness and reuse that a rule's `immutable` replaces with its own lifetime. */
const FRESHNESS_DIRECTIVES = new Set(['max-age', 's-maxage', 'no-cache', 'must-revalidate', 'proxy-revalidate', 'immutable', 'stale-while-revalidate', 'stale-if-error']);

/**
 * `immutable` (a rule's policy for versioned artifacts: a .deb, a tarball named by its version):
 * a 200 is fresh for the rule's `ttl`, whatever the origin says of freshness, which many mirrors
 * get wrong (nothing at all, or max-age=0). What the origin says of storing still holds:
 * `no-store`, `private`, an authenticated request, `Set-Cookie` keep it out as under `standard`.
 */
function immutableHeaders(headers: Record<string, string | string[]>, ttl: number): Record<string, string | string[]> {
  const kept = [...parseCacheControl(headers['cache-control']).entries()]
    .filter(([name]) => !FRESHNESS_DIRECTIVES.has(name))
    .map(([name, value]) => (value === true ? name : `${name}=${value}`));
  const forced: Record<string, string | string[]> = { ...headers, 'cache-control': [...kept, `max-age=${Math.floor(ttl)}`].join(', ') };
  delete forced.expires;
  delete forced.pragma;
  return forced;
}

/** `always`: every 2xx GET lives `ttl` seconds, whatever its headers and the request's say. */
function forcedLifetime(
  settings: CacheSettings,
  req: { url: string; method: string; headers: IncomingHttpHeaders },
  status: number,
  headers: Record<string, string | string[]>,
): StoreDecision {
  if (status < 200 || status >= 300) return { reason: `status-${status}` };
  const forced: Record<string, string | string[]> = { ...headers, 'cache-control': `max-age=${Math.floor(settings.ttl ?? ALWAYS_DEFAULT_TTL)}` };
  delete forced.expires;
  delete forced.pragma;
  if (forced.vary === '*') delete forced.vary;
  const plainReq = { ...req, headers: { ...req.headers } };
  delete plainReq.headers.authorization;
  delete plainReq.headers['cache-control'];
  delete plainReq.headers.pragma;
  const policy = newPolicy(plainReq, { status, headers: forced }, { shared: false });
  return policy.storable() ? { policy } : { reason: `status-${status}` };
}

function unstorableReason(shared: boolean, cc: Map<string, string | true>, requestHeaders: IncomingHttpHeaders, status: number): string {
  const reqcc = parseCacheControl(requestHeaders['cache-control']);
  if (cc.has('no-store') || reqcc.has('no-store')) return 'no-store';
  if (shared && cc.has('private')) return 'private';
  if (shared && requestHeaders.authorization) return 'authorization';
  return `status-${status}`;
}

/** Freshness the response states itself. `immutable` counts: the library gives it immutableMinTimeToLive. */
function statesFreshness(shared: boolean, cc: Map<string, string | true>, headers: Record<string, string | string[]>): boolean {
  return cc.has('max-age') || (shared && cc.has('s-maxage')) || headers.expires !== undefined || cc.has('immutable');
}

/** no-cache (or Pragma: no-cache without Cache-Control): stored, never reused without asking. */
function forbidsReuse(cc: Map<string, string | true>, headers: Record<string, string | string[]>): boolean {
  return cc.has('no-cache') || (headers['cache-control'] === undefined && /no-cache/.test(String(headers.pragma ?? '')));
}
