/** Text the extension shows for cache entries. Free of `vscode` so it can be tested with plain Node. */
import * as zlib from 'node:zlib';
import type { CacheEntrySummary } from '../cache/types';
import { formatBytes } from '../core/events';
import type { WireStoredResponse } from '../ipc/protocol';

/** 59s, 4m, 3h, 2d */
export function formatDuration(seconds: number): string {
  const s = Math.max(0, Math.round(Math.abs(seconds)));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m`;
  if (s < 86_400) return `${Math.floor(s / 3600)}h`;
  return `${Math.floor(s / 86_400)}d`;
}

/** `200 · 12.4 KB · fresh 4m · 3 hits` (and `· rule npm:tarball` when a rule applied): what the tree shows next to a URL. */
export function describeEntry(e: CacheEntrySummary): string {
  const freshness = e.fresh ? `fresh ${formatDuration(e.ttl)}` : `stale ${formatDuration(e.ttl)}`;
  const hits = `${e.hits} ${e.hits === 1 ? 'hit' : 'hits'}`;
  return [String(e.status), formatBytes(e.size), freshness, hits, ...(e.rule ? [`rule ${e.rule}`] : [])].join(' · ');
}

/** Path and query of a URL, the label of an entry under its host. */
export function entryLabel(e: CacheEntrySummary): string {
  let label: string;
  try {
    const u = new URL(e.url);
    label = u.pathname + u.search;
  } catch {
    label = e.url;
  }
  return e.method && e.method !== 'GET' ? `${e.method} ${label}` : label;
}

export function entryHost(e: CacheEntrySummary): string {
  try {
    return new URL(e.url).host;
  } catch {
    return '(unknown host)';
  }
}

/** A shell-quoted curl command line that fetches the entry's URL through the proxy. */
export function curlCommand(e: CacheEntrySummary, proxyUrl: string): string {
  const quote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
  const method = e.method === 'HEAD' ? ' -I' : e.method && e.method !== 'GET' ? ` -X ${e.method}` : '';
  return `curl -x ${proxyUrl}${method} ${quote(e.url)}`;
}

const TEXT_TYPES = /^(text\/|application\/(json|.*\+json|xml|.*\+xml|javascript|ecmascript|x-www-form-urlencoded|graphql|x-sh|yaml|x-yaml|toml|sql)\b|image\/svg\+xml)/i;

function header(headers: Record<string, string | string[]>, name: string): string | undefined {
  for (const [k, v] of Object.entries(headers)) {
    if (k.toLowerCase() === name) return Array.isArray(v) ? v.join(', ') : v;
  }
  return undefined;
}

function decodeBody(body: Buffer, encoding: string | undefined): { body: Buffer; note?: string } {
  const enc = (encoding ?? '').trim().toLowerCase();
  try {
    if (enc === 'gzip' || enc === 'x-gzip') return { body: zlib.gunzipSync(body), note: 'decoded from gzip' };
    if (enc === 'br') return { body: zlib.brotliDecompressSync(body), note: 'decoded from br' };
    if (enc === 'deflate') return { body: zlib.inflateSync(body), note: 'decoded from deflate' };
  } catch {
    return { body, note: `could not decode ${enc}` };
  }
  return { body };
}

function looksBinary(body: Buffer): boolean {
  const sample = body.subarray(0, 4096);
  let control = 0;
  for (const byte of sample) {
    if (byte === 0) return true;
    if (byte < 9 || (byte > 13 && byte < 32)) control++;
  }
  return sample.length > 0 && control / sample.length > 0.1;
}

/** The read-only document "Open" shows: status line, headers, a blank line, then the body. */
export function renderStoredResponse(stored: WireStoredResponse): string {
  const { summary } = stored;
  const lines = [`${summary.method} ${summary.url}`, `HTTP/1.1 ${summary.status} ${stored.statusMessage}`.trimEnd()];
  for (const [name, value] of Object.entries(stored.headers)) {
    for (const v of Array.isArray(value) ? value : [value]) lines.push(`${name}: ${v}`);
  }
  lines.push('');
  const raw = Buffer.from(stored.bodyBase64, 'base64');
  const contentType = header(stored.headers, 'content-type') ?? summary.contentType ?? '';
  const { body, note } = decodeBody(raw, header(stored.headers, 'content-encoding'));
  const cut = stored.truncated ? `\n\n[… body cut: showing ${formatBytes(raw.length)} of ${formatBytes(stored.bodySize)}]` : '';
  if (stored.bodySize === 0) {
    lines.push('[empty body]');
  } else if (!TEXT_TYPES.test(contentType) && (contentType !== '' || looksBinary(body))) {
    lines.push(`[binary body: ${formatBytes(stored.bodySize)}${contentType ? `, ${contentType}` : ''}; not shown]`);
  } else {
    if (note) lines.push(`[${note}]`);
    let text = body.toString('utf8');
    if (/json/i.test(contentType) && !stored.truncated) {
      try {
        text = JSON.stringify(JSON.parse(text), null, 2);
      } catch {
        // not valid JSON after all: show it as sent
      }
    }
    lines.push(text + cut);
  }
  return lines.join('\n');
}
