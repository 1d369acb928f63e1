/**
 * The `replay` policy: requests are answered from a HAR file's entries, matched by method,
 * URL and the SHA-256 of the request body. Repeated requests take the matching entries in
 * file order, then keep getting the last one. No match: a 504 that says so, or, with
 * replayMiss "forward", the origin.
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { ProxyError, type Exchange, type Origin, type RequestHandler } from '../core/exchange';
import { responseHasNoBody, VIA_NAME } from '../core/forward';
import { forwardResponseHeaders, requestHasBody } from '../core/headers';
import { parseHar, type ParsedEntry } from './import';

const EMPTY_SHA256 = createHash('sha256').digest('hex');

function sha256(body: Buffer | null): string {
  return body && body.length ? createHash('sha256').update(body).digest('hex') : EMPTY_SHA256;
}

function matchKey(method: string, url: string, bodySha256: string): string {
  return `${method} ${url} ${bodySha256}`;
}

export class ReplayLog {
  private readonly byKey = new Map<string, { entries: ParsedEntry[]; used: number }>();

  constructor(
    readonly file: string,
    entries: ParsedEntry[],
  ) {
    for (const e of entries) {
      const key = matchKey(e.method, e.url, e.requestBodySha256 ?? sha256(e.requestBody));
      const list = this.byKey.get(key);
      if (list) list.entries.push(e);
      else this.byKey.set(key, { entries: [e], used: 0 });
    }
  }

  static async load(file: string): Promise<ReplayLog> {
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (err) {
      throw new Error(`replay: cannot read ${file}: ${(err as Error).message}`);
    }
    return new ReplayLog(file, parseHar(text, file));
  }

  get size(): number {
    let n = 0;
    for (const list of this.byKey.values()) n += list.entries.length;
    return n;
  }

  /** The entry that answers this request: the first not used yet, else the last again. */
  take(method: string, url: string, bodySha256: string): ParsedEntry | null {
    const list = this.byKey.get(matchKey(method, url, bodySha256));
    if (!list) return null;
    const entry = list.entries[Math.min(list.used, list.entries.length - 1)];
    list.used++;
    return entry;
  }
}

/** Reads a request body whole (replay matches on its digest, and a forwarded miss sends it on). */
function readBody(ex: Exchange): Promise<Buffer | null> {
  if (!requestHasBody(ex.req.headers)) return Promise.resolve(null);
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    ex.req.on('data', (c: Buffer) => chunks.push(c));
    ex.req.once('end', () => resolve(Buffer.concat(chunks)));
    ex.req.once('error', reject);
    ex.req.once('aborted', () => reject(new ProxyError(499, 'the client went away mid-request', 'ABORTED')));
  });
}

const FRAMING = new Set(['content-length', 'transfer-encoding']);

export function replayHandler(log: ReplayLog, forwardMisses: Origin | null): RequestHandler {
  return async (ex) => {
    const body = await readBody(ex);
    const digest = sha256(body);
    const entry = log.take(ex.method, ex.url.href, digest);
    if (!entry) {
      if (forwardMisses) {
        ex.cacheOutcome = 'fwd=miss; detail=replay-miss';
        const upstream = await forwardMisses.fetch({ method: ex.method, url: ex.url, headers: ex.forwardHeaders, body, client: ex.res });
        return ex.relay(upstream, ['Cache-Status', 'caching-proxy; fwd=miss; detail=replay-miss']);
      }
      ex.cacheOutcome = 'detail=replay-miss';
      const what = body?.length ? ` with this request body (${body.length} bytes, SHA-256 ${digest.slice(0, 12)}…)` : '';
      throw new ProxyError(504, `replay: no recorded exchange in ${log.file} matches ${ex.method} ${ex.url.href}${what}`, 'REPLAY_MISS');
    }
    if (!Buffer.isBuffer(entry.body)) {
      ex.cacheOutcome = 'detail=replay';
      throw new ProxyError(502, `replay: the recorded response to ${ex.method} ${ex.url.href} (entry ${entry.index}) cannot be replayed: ${entry.body.missing}`, 'REPLAY_INCOMPLETE');
    }
    if (entry.status < 100) {
      ex.cacheOutcome = 'detail=replay';
      throw new ProxyError(502, `replay: the recorded request ${ex.method} ${ex.url.href} got no response (status ${entry.status})`, 'REPLAY_NO_RESPONSE');
    }
    const headers: string[] = [];
    // As a proxy passes a response on: hop-by-hop fields out, Via in; the framing is the body's own.
    const raw = forwardResponseHeaders(entry.responseHeaders, '1.1', VIA_NAME);
    for (let i = 0; i < raw.length; i += 2) {
      const lower = raw[i].toLowerCase();
      if (!FRAMING.has(lower) && lower !== 'cache-status') headers.push(raw[i], raw[i + 1]);
    }
    const noBody = responseHasNoBody(ex.method, entry.status);
    if (!noBody || ex.method === 'HEAD') headers.push('Content-Length', String(entry.body.length));
    headers.push('Cache-Status', 'caching-proxy; hit; detail=replay');
    ex.cacheOutcome = 'hit; detail=replay';
    ex.respond(entry.status, entry.statusText || undefined, headers, entry.body);
  };
}
