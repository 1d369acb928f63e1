import type { IncomingHttpHeaders } from 'node:http';
import { forwardResponseHeaders } from '../core/headers';
import { VIA_NAME } from '../core/forward';

/** Directive map of a Cache-Control value; only used for the few checks the policy library does not expose. */
export function parseCacheControl(value: string | string[] | undefined): Map<string, string | true> {
  const out = new Map<string, string | true>();
  if (!value) return out;
  const joined = Array.isArray(value) ? value.join(',') : value;
  for (const part of joined.split(',')) {
    const eq = part.indexOf('=');
    const name = (eq < 0 ? part : part.slice(0, eq)).trim().toLowerCase();
    if (!name) continue;
    out.set(name, eq < 0 ? true : part.slice(eq + 1).trim().replace(/^"|"$/g, ''));
  }
  return out;
}

/** Lower-cased header object from a raw [name, value, ...] list, as http-cache-semantics wants it. */
export function headerObject(raw: string[]): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i].toLowerCase();
    const value = raw[i + 1];
    const prev = out[name];
    if (prev === undefined) out[name] = name === 'set-cookie' ? [value] : value;
    else if (Array.isArray(prev)) prev.push(value);
    else out[name] = `${prev}, ${value}`;
  }
  return out;
}

/** Flattens IncomingHttpHeaders values to what the policy library compares. */
export function headerValue(h: IncomingHttpHeaders, name: string): string | undefined {
  const v = h[name];
  return Array.isArray(v) ? v.join(', ') : v;
}

const PER_RESPONSE = new Set(['age', 'cache-status']);

/**
 * The stored response headers as sent on every hit, prepared once: hop-by-hop removed, our Via
 * appended, without Age and Cache-Status, which change per response. The origin's Date stays
 * (a hit is the origin's response, Age says how old); one is added if the origin sent none
 * (RFC 9110 §6.6.1: a cache records when it received the response).
 */
export function prepareStoredHeaders(upstreamRaw: string[], httpVersion: string): string[] {
  const forwarded = forwardResponseHeaders(upstreamRaw, httpVersion, VIA_NAME);
  const out: string[] = [];
  for (let i = 0; i < forwarded.length; i += 2) {
    if (!PER_RESPONSE.has(forwarded[i].toLowerCase())) out.push(forwarded[i], forwarded[i + 1]);
  }
  return withDate(out);
}

/** The fields with a Date: the one they have, or now. */
export function withDate(raw: string[]): string[] {
  if (rawHeader(raw, 'date') === undefined) raw.push('Date', new Date().toUTCString());
  return raw;
}

/** Headers a 304 must not change on the stored response (the body they describe is the old one). */
const KEEP_ON_UPDATE = new Set(['content-length', 'content-encoding', 'transfer-encoding', 'content-range', 'via', 'age', 'cache-status', 'connection', 'keep-alive']);

/** RFC 9111 §3.2: a 304's header fields replace the stored ones of the same name (its Date too: Age counts from the 304). */
export function mergeNotModified(stored: string[], received: string[]): string[] {
  const notModifiedRaw = withDate(received.slice());
  const replacing = new Map<string, string[]>();
  for (let i = 0; i < notModifiedRaw.length; i += 2) {
    const lower = notModifiedRaw[i].toLowerCase();
    if (KEEP_ON_UPDATE.has(lower)) continue;
    const list = replacing.get(lower) ?? [];
    list.push(notModifiedRaw[i], notModifiedRaw[i + 1]);
    replacing.set(lower, list);
  }
  const out: string[] = [];
  for (let i = 0; i < stored.length; i += 2) {
    if (!replacing.has(stored[i].toLowerCase())) out.push(stored[i], stored[i + 1]);
  }
  for (const list of replacing.values()) out.push(...list);
  return out;
}

export function rawHeader(raw: string[], lowerName: string): string | undefined {
  for (let i = 0; i < raw.length; i += 2) if (raw[i].toLowerCase() === lowerName) return raw[i + 1];
  return undefined;
}

/** `image/*`-style patterns as one matcher over the media type (parameters ignored). */
export function contentTypeMatcher(patterns: string[]): (contentType: string | undefined) => boolean {
  if (!patterns.length) return () => false;
  const regexes = patterns.map(
    (p) => new RegExp('^' + p.trim().toLowerCase().split('*').map((s) => s.replace(/[.+?^${}()|[\]\\/]/g, '\\$&')).join('.*') + '$'),
  );
  return (contentType) => {
    if (!contentType) return false;
    const media = contentType.split(';')[0].trim().toLowerCase();
    return regexes.some((r) => r.test(media));
  };
}

/** RFC 9110 §13.1.2 weak comparison of an If-None-Match list against one entity tag. */
export function etagMatches(ifNoneMatch: string, etag: string | undefined): boolean {
  if (ifNoneMatch.trim() === '*') return etag !== undefined;
  if (!etag) return false;
  const bare = etag.replace(/^W\//, '');
  return ifNoneMatch.split(',').some((t) => t.trim().replace(/^W\//, '') === bare);
}
