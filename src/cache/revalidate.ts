import type { IncomingMessage } from 'node:http';
import { ProxyError, type Exchange, type Origin } from '../core/exchange';
import { VIA_NAME } from '../core/forward';
import { cacheStatus, cacheStatusField, type Forward } from './cacheStatus';
import { loadMeta, ttlSeconds, type Entry } from './entry';
import { clientBound, type Fill, type Fills } from './fills';
import { mergeNotModified, rawHeader } from './headers';
import type { CacheReport } from './report';
import { policyResponseHeaders } from './fieldValues';
import { isUnconditional, policyRequestHeaders } from './rules';
import { freshUntil, notModifiedPolicy, stillUsableOnError, type PolicyRequest } from './semantics';
import type { StoredAnswers } from './serve';
import type { CacheSettings } from './settings';
import type { Store } from './store';
import type { Storing } from './storing';

export interface RevalidationDeps {
  origin: Origin;
  store: Store;
  report: CacheReport;
  answers: StoredAnswers;
  storing: Storing;
  fills: Fills;
  /** The settings a stored entry is refreshed under: those of the rule it was stored under, if still in force. */
  settingsForEntry: (entry: Entry) => CacheSettings;
  /** Aborts background revalidations when the cache closes. */
  shutdown: AbortSignal;
}

/** Asking the origin whether a stored entry is still good (RFC 9111 §4.3), with a client waiting or in the background. */
export class Revalidation {
  constructor(private readonly d: RevalidationDeps) {}

  /** Revalidates an entry for a client, then answers it from the outcome. */
  async revalidateAndServe(ex: Exchange, entry: Entry, fwd: Forward, settings: CacheSettings, fill: Fill | null = null): Promise<void> {
    const { answers, report } = this.d;
    const meta = entry.meta!;
    const href = ex.url.href;
    const policyReq = { url: href, method: 'GET', headers: policyRequestHeaders(ex.url, ex.req.headers, entry.vary) };
    // The Vary-named fields as the entry was matched by (normalised), so the policy sends its validators.
    const asMatched: Record<string, string> = {};
    for (const name of entry.vary ?? []) {
      const value = policyReq.headers[name];
      if (typeof value === 'string') asMatched[name] = value;
    }
    const conditional = meta.policy.revalidationHeaders({ url: href, method: 'GET', headers: { ...ex.forwardHeaders, ...asMatched, host: ex.url.host } as PolicyRequest['headers'] });
    delete conditional.host;
    // A range is served from the refreshed entry; asking the origin for one would not refresh it.
    delete conditional.range;
    ex.cacheOutcome = cacheStatus({ fwd });
    let upstream: IncomingMessage;
    try {
      upstream = await this.d.origin.fetch({ method: 'GET', url: ex.url, headers: conditional, ...clientBound(ex, fill) });
    } catch (err) {
      if (err instanceof ProxyError && err.status === 499) throw err;
      if (stillUsableOnError(meta.policy, policyReq)) {
        report.event('served-stale', href, { key: entry.key, reason: 'stale-if-error', status: entry.status });
        return answers.serve(ex, entry, cacheStatus({ fwd, ttl: ttlSeconds(entry), detail: 'stale-if-error', rule: settings.rule }));
      }
      if (settings.serveStaleIfOffline && !meta.neverStale && err instanceof ProxyError && err.status >= 500) {
        report.event('served-stale', href, { key: entry.key, reason: 'origin-unreachable', status: entry.status });
        return answers.serve(ex, entry, cacheStatus({ fwd, ttl: ttlSeconds(entry), detail: 'origin-unreachable', rule: settings.rule }));
      }
      throw err;
    }
    const status = upstream.statusCode ?? 502;
    if (status === 304) {
      upstream.resume();
      const unconditional = isUnconditional(ex.req.headers);
      if (this.refreshFrom304(entry, policyReq, upstream, unconditional)) {
        return answers.serve(ex, entry, cacheStatus({ fwd, fwdStatus: 304, ttl: ttlSeconds(entry), rule: settings.rule }));
      }
      if (unconditional) {
        // A 304 for a representation we do not have, and a client without a copy of its own:
        // it must get a full response (RFC 9111 §4.3.4), so ask again without validators.
        this.d.store.drop(entry, 'invalidated', '304 for another representation');
        const full = await this.d.origin.fetch({ method: 'GET', url: ex.url, headers: ex.forwardHeaders, ...clientBound(ex, fill) });
        return this.d.storing.storeOrRelay(ex, full, { url: ex.url, href, fwd, settings, requestHeaders: ex.req.headers, replacing: null, prefetch: false, fill }, null);
      }
      // The 304 is about the client's own copy, not ours: hand it on.
      const value = cacheStatus({ fwd, fwdStatus: 304, rule: settings.rule });
      ex.cacheOutcome = value;
      return ex.relay(upstream, cacheStatusField(value));
    }
    if (status >= 500 && stillUsableOnError(meta.policy, policyReq, { status, headers: policyResponseHeaders(upstream.rawHeaders) })) {
      upstream.resume();
      report.event('served-stale', href, { key: entry.key, reason: 'stale-if-error', status: entry.status });
      return answers.serve(ex, entry, cacheStatus({ fwd, fwdStatus: status, ttl: ttlSeconds(entry), detail: 'stale-if-error', rule: settings.rule }));
    }
    return this.d.storing.storeOrRelay(ex, upstream, { url: ex.url, href, fwd, settings, requestHeaders: ex.req.headers, replacing: entry, prefetch: false, fill }, null);
  }

  /** Revalidates an entry without a client waiting (stale-while-revalidate, the UI's "revalidate"). */
  background(entry: Entry): Promise<void> {
    const running = this.d.fills.get(entry.key);
    if (running) return running.promise;
    return this.d.fills.start(entry.key, (fill) =>
      this.refresh(entry, fill).catch((err: unknown) => {
        this.d.report.notice('debug', `cache: revalidating ${entry.url} failed: ${(err as Error).message}`);
      }),
    ).promise;
  }

  private async refresh(entry: Entry, fill: Fill): Promise<void> {
    const meta = await this.d.store.load(entry);
    if (!meta) return;
    const url = new URL(entry.url);
    const policyReq = { url: entry.url, method: 'GET', headers: { ...meta.requestHeaders } };
    const conditional = meta.policy.revalidationHeaders({ url: entry.url, method: 'GET', headers: { ...meta.requestHeaders, accept: '*/*', via: `1.1 ${VIA_NAME}` } });
    delete conditional.host;
    const upstream = await this.d.origin.fetch({ method: 'GET', url, headers: conditional, signal: this.d.shutdown });
    const status = upstream.statusCode ?? 502;
    if (status === 304) {
      upstream.resume();
      if (!this.refreshFrom304(entry, policyReq, upstream, true)) this.d.store.drop(entry, 'invalidated', '304 for another representation');
      return;
    }
    if (status >= 500) {
      upstream.resume();
      return;
    }
    const settings = this.d.settingsForEntry(entry);
    await this.d.storing.storeOrRelay(null, upstream, { url, href: entry.url, fwd: 'stale', settings, requestHeaders: meta.requestHeaders, replacing: entry, prefetch: false, fill }, null);
  }

  /**
   * Applies a 304 to a stored entry (RFC 9111 §4.3.4); false if the 304 does not select it.
   * `oursOnly`: the request carried only the entry's own validators, so a 304 that names no
   * validator (many origins omit ETag on a 304) can only be about this entry.
   */
  private refreshFrom304(entry: Entry, policyReq: PolicyRequest, upstream: IncomingMessage, oursOnly: boolean): boolean {
    const meta = entry.meta!;
    const headers = policyResponseHeaders(upstream.rawHeaders);
    if (oursOnly && headers.etag === undefined && headers['last-modified'] === undefined) {
      const etag = rawHeader(meta.raw, 'etag');
      const lastModified = rawHeader(meta.raw, 'last-modified');
      if (etag !== undefined) headers.etag = etag;
      if (lastModified !== undefined) headers['last-modified'] = lastModified;
    }
    const policy = notModifiedPolicy(meta.policy, policyReq, { status: 304, headers });
    if (policy === null) return false;
    entry.meta = loadMeta(policy, meta.statusMessage, mergeNotModified(meta.raw, upstream.rawHeaders), meta.requestHeaders);
    entry.meta.rule = meta.rule;
    entry.freshUntil = freshUntil(policy);
    entry.storedAt = Date.now();
    this.d.store.saveMeta(entry);
    this.d.report.event('revalidated', entry.url, { key: entry.key, reason: '304', status: entry.status, size: entry.size });
    return true;
  }
}
