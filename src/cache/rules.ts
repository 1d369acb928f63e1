import type { IncomingHttpHeaders } from 'node:http';
import { headerValue, parseCacheControl, rawHeader } from './headers';
import type { CacheSettings } from './settings';
import { excludesType } from './settings';
import { newPolicy, type Policy } from './semantics';

/**
 * The caching rules (RFC 9111 and ours), each a small named question. The RFC's own rules come
 * from http-cache-semantics; these decide what it does not.
 */

const MiB = 1024 * 1024;
const UNSAFE_METHODS = new Set(['POST', 'PUT', 'DELETE', 'PATCH']);

/** A request that asks for nothing but a stored response: no directives, validators or ranges of its own. */
export function asksOnlyForStored(h: IncomingHttpHeaders): boolean {
  return h['cache-control'] === undefined && h.pragma === undefined && h['if-none-match'] === undefined && h['if-modified-since'] === undefined && h.range === undefined;
}

/** A GET/HEAD a fresh in-memory entry may answer at once: nothing asked but the stored response, and no body to read first. */
export function answerableAtOnce(method: string, h: IncomingHttpHeaders): boolean {
  return (
    (method === 'GET' || method === 'HEAD') &&
    asksOnlyForStored(h) &&
    h['transfer-encoding'] === undefined &&
    (h['content-length'] === undefined || h['content-length'] === '0')
  );
}

/** No validators of the client's own (it has no copy we must compare against). */
export function isUnconditional(h: IncomingHttpHeaders): boolean {
  return h['if-none-match'] === undefined && h['if-modified-since'] === undefined;
}

/** RFC 9111 §4.4: a successful unsafe request invalidates what is stored for its URL. */
export function invalidatesStored(method: string, status: number): boolean {
  return UNSAFE_METHODS.has(method) && status >= 200 && status < 400;
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
  for (const name of vary) key += `\n${name}: ${headerValue(headers, name) ?? ''}`;
  return key;
}

/** The request as the policy sees it: only what RFC 9111 consults, so no cookies end up in metadata. */
export function policyRequestHeaders(url: URL, h: IncomingHttpHeaders, vary: string[] | null): IncomingHttpHeaders {
  const out: IncomingHttpHeaders = { host: url.host };
  if (h['cache-control'] !== undefined) out['cache-control'] = headerValue(h, 'cache-control');
  if (h.pragma !== undefined) out.pragma = h.pragma;
  if (h.authorization !== undefined) out.authorization = 'present';
  if (vary) for (const name of vary) if (h[name] !== undefined) out[name] = headerValue(h, name);
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

/**
 * The policy for a response about to be stored, or why it is not stored. RFC 9111 rules come
 * from http-cache-semantics; `ttl` only stands in for freshness the response does not state
 * (and for everything under `always`).
 */
export function storeDecision(
  settings: CacheSettings,
  href: string,
  requestHeaders: IncomingHttpHeaders,
  status: number,
  headers: Record<string, string | string[]>,
): StoreDecision {
  const req = { url: href, method: 'GET', headers: requestHeaders };
  if (settings.policy === 'always') return forcedLifetime(settings, req, status, headers);
  const shared = settings.policy !== 'private';
  const options = { shared, immutableMinTimeToLive: 24 * 3600 * 1000 };
  const policy = newPolicy(req, { status, headers }, options);
  const cc = parseCacheControl(headers['cache-control']);
  if (!policy.storable()) return { reason: unstorableReason(shared, cc, requestHeaders, status) };
  if (shared && headers['set-cookie'] && !cc.has('public') && !cc.has('immutable')) {
    // Storable by the letter of RFC 9111, but one user's cookie must not be handed to another.
    return { reason: 'set-cookie' };
  }
  if (!statesFreshness(shared, cc, headers) && !forbidsReuse(cc, headers)) {
    const withTtl = { ...headers, 'cache-control': [headers['cache-control'], `max-age=${Math.floor(settings.ttl)}`].filter(Boolean).join(', ') };
    return { policy: newPolicy(req, { status, headers: withTtl }, options) };
  }
  return { policy };
}

/** `always`: every 2xx GET lives `ttl` seconds, whatever its headers and the request's say. */
function forcedLifetime(
  settings: CacheSettings,
  req: { url: string; method: string; headers: IncomingHttpHeaders },
  status: number,
  headers: Record<string, string | string[]>,
): StoreDecision {
  if (status < 200 || status >= 300) return { reason: `status-${status}` };
  const forced: Record<string, string | string[]> = { ...headers, 'cache-control': `max-age=${Math.floor(settings.ttl)}` };
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
