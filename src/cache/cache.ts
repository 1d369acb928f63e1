import type { IncomingHttpHeaders } from 'node:http';
import { LRUCache } from 'lru-cache';
import type { CacheConfig } from '../core/config';
import type { Exchange } from '../core/exchange';
import type { QuickLane } from '../core/quick/lane';
import { isPlainRequest } from '../core/quick/request';
import { VIA_NAME } from '../core/forward';
import { requestHasBody } from '../core/headers';
import { cacheStatus, hitStatus, type Forward } from './cacheStatus';
import { isFresh, ttlSeconds, type Entry } from './entry';
import { clientBound, Fills, unjoinableFill, type Fill } from './fills';
import { parseCacheControl } from './headers';
import { HitForMiss } from './hitForMiss';
import { cacheStats, listEntries, purgeAll, purgeEntry, purgeHost, readEntry, summarise } from './operations';
import { Prefetcher } from './prefetch';
import { cacheQuickLane } from './quick';
import { CacheReport } from './report';
import { Revalidation } from './revalidate';
import { isUnconditional, plainKey, policyRequestHeaders } from './rules';
import { StoredAnswers } from './serve';
import { RuleSet } from '../rules/ruleSet';
import { quickPolicy, settingsFor, type CacheSettings, type SettingsRequest } from './settings';
import { Store } from './store';
import { Storing } from './storing';
import type { CacheDeps, CacheEntrySummary, CacheStats, HttpCache, ResponseToStore, StoreOutcome, StoredResponse } from './types';
import { bypass, forwardUnsafe, gatewayTimeout } from './uncached';

const RESOLVED = Promise.resolve();

/** Whether a policy lets stored entries answer requests at once (`offline` ones go the ordinary way, `off` ones are never answered from the cache). */
function servesStored(policy: CacheSettings['policy']): boolean {
  return policy !== 'offline' && policy !== 'off';
}

/**
 * The request flow of the cache: look the request up, then answer it one way — fresh from the
 * store, revalidated with the origin, joined to a fetch already under way, or fetched. Each
 * step lives in its own file (see docs/ARCHITECTURE.md); this class only chooses among them.
 */
export class Cache implements HttpCache {
  private config: CacheConfig;
  private rules = RuleSet.EMPTY;
  private readonly report: CacheReport;
  private readonly store: Store;
  private readonly fills: Fills;
  private readonly marks = new HitForMiss();
  private readonly answers: StoredAnswers;
  private readonly storing: Storing;
  private readonly revalidation: Revalidation;
  private readonly prefetcher: Prefetcher;
  /** URL -> requests seen, for admitAfter. */
  private readonly admissions = new LRUCache<string, number>({ max: 50_000 });
  /** Cancels background fetches (prefetch, revalidation) when the cache closes. */
  private readonly shutdown = new AbortController();
  readonly quick: QuickLane<Entry>;

  constructor(
    config: CacheConfig,
    private readonly deps: CacheDeps,
  ) {
    this.config = config;
    const policyFor = (href: string, headers: Record<string, string>) => quickPolicy(this.config, this.rules, href, headers);
    this.report = new CacheReport(deps.events);
    this.store = new Store(config, this.report);
    this.fills = new Fills(this.report);
    this.answers = new StoredAnswers(this.store, this.report, (ex, entry) => this.miss(ex, entry.key, 'miss', this.settingsFor(ex.url, ex.req.headers, ex.method)));
    this.prefetcher = new Prefetcher(
      (href) => this.store.hasUrl(href) || this.fills.has(plainKey(href)),
      (href) => this.prefetch(href),
    );
    this.storing = new Storing({
      store: this.store,
      report: this.report,
      marks: this.marks,
      answers: this.answers,
      bypass: (ex, value) => bypass(deps.origin, ex, value),
      storedPage: (entry, s) => this.prefetcher.pageStored(entry, s.prefetchLinks),
    });
    this.revalidation = new Revalidation({
      origin: deps.origin,
      store: this.store,
      report: this.report,
      answers: this.answers,
      storing: this.storing,
      fills: this.fills,
      settingsForEntry: (entry) => this.settingsForEntry(entry),
      shutdown: this.shutdown.signal,
    });
    this.quick = cacheQuickLane(this.store, this.report, this.marks, policyFor);
  }

  async init(): Promise<void> {
    await this.store.open();
  }

  /** The settings that apply to a request: the one place they are chosen (global, or a rule's over them). */
  private settingsFor(url: URL | string, headers: SettingsRequest['headers'] = {}, method = 'GET'): CacheSettings {
    return settingsFor(this.config, this.rules, url, { method, headers });
  }

  /** The settings a stored entry is refreshed under: its rule's while that rule is in force, else what its URL matches now. */
  private settingsForEntry(entry: Entry): CacheSettings {
    const rule = entry.meta?.rule === undefined ? null : this.rules.named(entry.meta.rule);
    return rule ? settingsFor(this.config, RuleSet.of([rule.spec]), entry.url) : this.settingsFor(entry.url, entry.meta?.requestHeaders);
  }

  /** Rules and presets in force from now on (entries stored under earlier ones keep their lifetimes). */
  setRules(rules: RuleSet): void {
    if (rules === this.rules) return;
    this.rules = rules;
    // What could not be stored under the old rules may be storable under the new ones.
    this.marks.clear();
  }

  readonly handler = (ex: Exchange): Promise<void> => {
    // The fresh-hit fast path: synchronous, no policy evaluation, headers prepared at store time.
    if (isPlainRequest(ex.method, ex.req.headers) && servesStored(quickPolicy(this.config, this.rules, ex.url.href, ex.req.headers))) {
      const entry = this.store.freshInMemory(ex.url.href, ex.req.headers);
      if (entry !== null) {
        this.answers.serveFromMemory(ex, entry, hitStatus(ttlSeconds(entry), entry.meta!.rule));
        return RESOLVED;
      }
    }
    return this.handle(ex);
  };

  // ---------------------------------------------------------------- the flow

  private async handle(ex: Exchange, waited = false): Promise<void> {
    const settings = this.settingsFor(ex.url, ex.req.headers, ex.method);
    const withBody = requestHasBody(ex.req.headers);
    if (settings.policy === 'offline') {
      if (withBody) return gatewayTimeout(ex, cacheStatus({ detail: 'offline', rule: settings.rule }), `offline: a ${ex.method} with a body cannot be answered from the cache`);
      return this.offline(ex, settings);
    }
    // A rule switched caching off for these requests: forwarded as they are, nothing stored or served.
    if (settings.policy === 'off') return bypass(this.deps.origin, ex, cacheStatus({ fwd: 'bypass', detail: 'policy-off', rule: settings.rule }));
    if (ex.method !== 'GET' && ex.method !== 'HEAD') return forwardUnsafe(this.deps.origin, this.store, ex);
    if (withBody) return bypass(this.deps.origin, ex, cacheStatus({ fwd: 'bypass', detail: 'request-body' }));

    // Lookup.
    const href = ex.url.href;
    const h = ex.req.headers;
    const reqcc = parseCacheControl(h['cache-control']);
    const onlyIfCached = reqcc.has('only-if-cached');
    const key = await this.store.resolveKey(href, h);
    const entry = await this.lookup(key);

    if (entry === null) {
      if (onlyIfCached) return gatewayTimeout(ex, cacheStatus({ detail: 'only-if-cached' }), `only-if-cached: ${href} is not in the cache`);
      if (ex.method === 'HEAD') return bypass(this.deps.origin, ex, cacheStatus({ fwd: 'miss' }));
      if (h.range !== undefined) return bypass(this.deps.origin, ex, cacheStatus({ fwd: 'miss', detail: 'range' }));
      return this.miss(ex, key, this.store.hasUrl(href) ? 'vary-miss' : 'miss', settings);
    }

    const meta = entry.meta!;
    const evaluation = meta.evalPolicy.evaluateRequest({ url: href, method: 'GET', headers: policyRequestHeaders(ex.url, h, entry.vary) });
    // No stale answer (max-stale, stale-while-revalidate) where a directive forbids it (RFC 9111 §4.2.4).
    const staleForbidden = meta.neverStale && meta.policy.stale();
    // max-age=0 (a browser reload) always means "ask the origin", even for an entry stored this very millisecond.
    const reload = reqcc.get('max-age') === '0';
    const mayServeStored = !staleForbidden && !reload;

    // Fresh.
    if (!evaluation.revalidation && mayServeStored) return this.answers.serve(ex, entry, hitStatus(ttlSeconds(entry), meta.rule));
    if (evaluation.response && evaluation.revalidation && !evaluation.revalidation.synchronous && mayServeStored) {
      // stale-while-revalidate: answer now, refresh behind the client's back.
      this.report.event('served-stale', href, { key, reason: 'stale-while-revalidate', status: entry.status });
      void this.revalidation.background(entry);
      return this.answers.serve(ex, entry, cacheStatus({ hit: true, ttl: ttlSeconds(entry), detail: 'stale-while-revalidate', rule: meta.rule }));
    }
    if (onlyIfCached) return gatewayTimeout(ex, cacheStatus({ detail: 'only-if-cached' }), `only-if-cached: the stored response for ${href} needs revalidation`);
    // A HEAD never refreshes the stored GET; forward it as is.
    if (ex.method === 'HEAD') return bypass(this.deps.origin, ex, cacheStatus({ fwd: 'stale', detail: 'head' }));

    const fwd: Forward = isFresh(entry) ? 'request' : 'stale';
    const plain = fwd === 'stale' && isUnconditional(h);
    const running = this.fills.get(key);
    // Join: another request is revalidating this entry (an expiry stampede); answer from its outcome.
    if (plain && running && !waited) {
      await this.fills.join(running, href, key);
      return this.handle(ex, true);
    }
    // Revalidate.
    if (!plain || running) return this.revalidation.revalidateAndServe(ex, entry, fwd, settings);
    return this.fills.start(key, (fill) => this.revalidation.revalidateAndServe(ex, entry, fwd, settings, fill)).promise;
  }

  /** The stored entry for a key with its metadata loaded, or null. */
  private async lookup(key: string): Promise<Entry | null> {
    return (await this.store.find(key)) ?? null;
  }

  /** Nothing usable stored: join a fetch under way for the key, or fetch. */
  private async miss(ex: Exchange, key: string, fwd: Forward, settings: CacheSettings): Promise<void> {
    const href = ex.url.href;
    const running = this.marks.has(href) ? undefined : this.fills.get(key);
    if (running) {
      // Join: someone is already fetching this; wait for it and answer from what it stored.
      await this.fills.join(running, href, key);
      const entry = await this.store.find(await this.store.resolveKey(href, ex.req.headers));
      if (entry) {
        this.report.hits++;
        return this.answers.serve(ex, entry, cacheStatus({ fwd, collapsed: true, rule: settings.rule }), false);
      }
      // It was not stored (no-store, too large, failed): fetch for ourselves.
    }
    this.report.miss(href, key);
    const fetch = (fill: Fill) => this.fetch(ex, fwd, settings, fill, !isUnconditional(ex.req.headers));
    // Nobody waits on a fetch for an uncacheable URL, nor replaces one already registered.
    if (running || this.marks.has(href) || this.fills.has(key)) return fetch(unjoinableFill());
    return this.fills.start(key, fetch).promise;
  }

  /**
   * Fetch: asks the origin for the full response and stores what may be stored. `deferClient`:
   * the client has a copy (a browser's own cache); its validators are not forwarded, so the
   * cache fills, and they are answered from the stored entry (RFC 9111 §4.3.2).
   */
  private async fetch(ex: Exchange, fwd: Forward, settings: CacheSettings, fill: Fill, deferClient: boolean): Promise<void> {
    const href = ex.url.href;
    let headers = ex.forwardHeaders;
    if (deferClient) {
      headers = { ...headers };
      delete headers['if-none-match'];
      delete headers['if-modified-since'];
    }
    const admission = this.admit(href, settings);
    ex.cacheOutcome = cacheStatus({ fwd, rule: settings.rule });
    const upstream = await this.deps.origin.fetch({ method: 'GET', url: ex.url, headers, ...clientBound(ex, fill) });
    const plan = { url: ex.url, href, fwd, settings, requestHeaders: ex.req.headers, replacing: null, prefetch: false, fill, deferClient };
    return this.storing.storeOrRelay(ex, upstream, plan, admission);
  }

  /** admitAfter: null once the URL has been asked for often enough to be stored, else the reason it is not. */
  private admit(href: string, settings: CacheSettings): string | null {
    if (settings.admitAfter <= 1) return null;
    const count = 1 + (this.admissions.get(href) ?? 0);
    this.admissions.set(href, count);
    return count >= settings.admitAfter ? null : `admit-after-${settings.admitAfter}`;
  }

  /** A link of a stored page, fetched into the cache with nobody waiting. */
  private prefetch(href: string): Promise<void> {
    const url = new URL(href);
    const settings = this.settingsFor(href);
    return this.fills.start(plainKey(href), async (fill) => {
      try {
        const upstream = await this.deps.origin.fetch({ method: 'GET', url, headers: { accept: '*/*', via: `1.1 ${VIA_NAME}` }, signal: this.shutdown.signal });
        const plan = { url, href, fwd: 'miss' as const, settings, requestHeaders: {} as IncomingHttpHeaders, replacing: null, prefetch: true, fill };
        await this.storing.storeOrRelay(null, upstream, plan, null);
      } catch (err) {
        this.report.event('not-stored', href, { reason: `prefetch failed: ${(err as Error).message}` });
      }
    }).promise;
  }

  /** The `offline` policy: only what is stored, fresh or not; the origin is never contacted. */
  private async offline(ex: Exchange, settings: CacheSettings): Promise<void> {
    const offline = cacheStatus({ detail: 'offline', rule: settings.rule });
    if (ex.method !== 'GET' && ex.method !== 'HEAD') {
      return gatewayTimeout(ex, offline, `offline: the cache policy is "offline", so ${ex.method} requests cannot reach ${ex.url.host}`);
    }
    const entry = await this.lookup(await this.store.resolveKey(ex.url.href, ex.req.headers));
    if (entry) {
      if (!isFresh(entry)) this.report.event('served-stale', entry.url, { key: entry.key, reason: 'offline', status: entry.status });
      return this.answers.serve(ex, entry, cacheStatus({ hit: true, ttl: ttlSeconds(entry), detail: 'offline', rule: entry.meta!.rule ?? settings.rule }));
    }
    this.report.miss(ex.url.href);
    return gatewayTimeout(ex, offline, `offline: ${ex.url.href} is not in the cache (the cache policy is "offline")`);
  }

  // ---------------------------------------------------------------- operations for the UI

  list(limit?: number): Promise<CacheEntrySummary[]> {
    return listEntries(this.store, (entry) => this.ruleOf(entry), limit);
  }

  /** For the UI: the rule an entry was stored under, or (metadata not read since a restart) the one its URL matches now. */
  private ruleOf(entry: Entry): string | undefined {
    return entry.meta?.rule ?? this.settingsFor(entry.url, entry.meta?.requestHeaders).rule ?? undefined;
  }

  read(key: string): Promise<StoredResponse | null> {
    return readEntry(this.store, key);
  }

  storeResponse(response: ResponseToStore): Promise<StoreOutcome> {
    return this.storing.storeWhole(response, this.settingsFor(response.url, response.requestHeaders));
  }

  purge(key: string): Promise<boolean> {
    return purgeEntry(this.store, key);
  }

  purgeHost(host: string): Promise<number> {
    return purgeHost(this.store, host);
  }

  purgeAll(): Promise<number> {
    return purgeAll(this.store, this.report);
  }

  async revalidate(key: string): Promise<CacheEntrySummary | null> {
    const entry = await this.store.find(key, false);
    if (!entry) return null;
    await this.revalidation.background(entry);
    const now = await this.store.find(key, false);
    return now ? summarise(now, this.ruleOf(now)) : null;
  }

  stats(): CacheStats {
    return cacheStats(this.store, this.report);
  }

  async updateConfig(config: CacheConfig): Promise<void> {
    this.marks.clear();
    await this.store.reconfigure(config);
    this.config = config;
  }

  async close(): Promise<void> {
    this.shutdown.abort();
    this.prefetcher.close();
    await this.fills.settled();
    await this.store.close();
  }
}
