import type { IncomingHttpHeaders, IncomingMessage } from 'node:http';
import { ProxyError, type Exchange } from '../core/exchange';
import { cacheStatus, cacheStatusField, forwarded, type Forward } from './cacheStatus';
import type { Entry } from './entry';
import { EntryWriter, type StoreSpec, type WriteOutcome } from './entryWriter';
import type { Fill } from './fills';
import { headerObject, prepareStoredHeaders, rawHeader } from './headers';
import type { HitForMiss } from './hitForMiss';
import type { CacheReport } from './report';
import { entryRequestHeaders, limitRefuses, maxObjectBytes, plainKey, policyRequestHeaders, storeDecision, variantKey, varyOf } from './rules';
import type { StoredAnswers } from './serve';
import type { CacheSettings } from './settings';
import type { Store } from './store';
import type { ResponseToStore, StoreOutcome } from './types';

/** Why and how an origin response goes to the client and (maybe) the store. */
export interface Plan {
  url: URL;
  href: string;
  fwd: Forward;
  settings: CacheSettings;
  /** The client's request headers (the policy sees only what RFC 9111 consults of them). */
  requestHeaders: IncomingHttpHeaders;
  /** The entry this response replaces, if it answers a revalidation. */
  replacing: Entry | null;
  prefetch: boolean;
  fill: Fill | null;
  /** The client sent validators we did not forward: answer it from the stored entry once stored. */
  deferClient?: boolean;
}

export interface StoringDeps {
  store: Store;
  report: CacheReport;
  marks: HitForMiss;
  answers: StoredAnswers;
  /** Forwards the client's own request as it is (when a deferred answer could not be stored). */
  bypass: (ex: Exchange, cacheStatus: string) => Promise<void>;
  /** A stored HTML page: its links may be prefetched. */
  storedPage: (entry: Entry, settings: CacheSettings) => void;
}

/**
 * Storing an origin response: decides whether it may be stored, then relays it to the client
 * while an EntryWriter stores it (the slower of client and disk paces the origin).
 */
export class Storing {
  constructor(private readonly d: StoringDeps) {}

  /** Decides whether an origin response is stored; relays it to the client either way. */
  async storeOrRelay(ex: Exchange | null, upstream: IncomingMessage, plan: Plan, admission: string | null): Promise<void> {
    const { store, report, marks } = this.d;
    const status = upstream.statusCode ?? 502;
    const headers = headerObject(upstream.rawHeaders);
    const vary = varyOf(headers);
    const policyHeaders = policyRequestHeaders(plan.url, plan.requestHeaders, vary);
    let reason = admission ?? limitRefuses(plan.settings, headers, vary, store.capacity);
    const decision = reason ? null : storeDecision(plan.settings, plan.href, policyHeaders, status, headers);
    if (decision?.reason) reason = decision.reason;
    const fwd = forwarded(plan.fwd, status);

    if (!decision?.policy) {
      // Reasons that belong to the response, not to this moment (admission count, capacity).
      if (reason !== admission && reason !== 'no-capacity') {
        // Unstorable because the request carried credentials: says nothing about requests without them.
        marks.mark(plan.href, reason ?? 'not-storable', status, upstream.rawHeaders, plan.requestHeaders.authorization === undefined);
      }
      if (plan.replacing && status < 500) store.drop(plan.replacing, 'invalidated', `replaced by an unstorable ${status}`);
      if (ex) report.notStoredInResponse(plan.href, reason ?? 'not-storable', status, plan.settings.rule ?? undefined);
      else report.event('not-stored', plan.href, { reason: reason ?? 'not-storable', status, rule: plan.settings.rule ?? undefined });
      if (!ex) {
        upstream.resume();
        return;
      }
      const value = cacheStatus({ ...fwd, detail: reason ?? 'not-storable', rule: plan.settings.rule });
      ex.cacheOutcome = value;
      return ex.relay(upstream, cacheStatusField(value));
    }

    marks.unmark(plan.href);
    const variants = vary ? vary.filter((v) => v !== '*') : null;
    const contentType = headers['content-type'];
    const spec: StoreSpec = {
      key: variants ? variantKey(plan.href, variants, plan.requestHeaders) : plainKey(plan.href),
      href: plan.href,
      policy: decision.policy,
      status,
      statusMessage: upstream.statusMessage ?? '',
      stored: prepareStoredHeaders(upstream.rawHeaders, upstream.httpVersion),
      requestHeaders: entryRequestHeaders(policyHeaders),
      vary: variants,
      contentType: typeof contentType === 'string' ? contentType : undefined,
    };
    const stored = cacheStatus({ ...fwd, stored: true, rule: plan.settings.rule });
    if (ex && plan.deferClient) {
      ex.cacheOutcome = stored;
      await this.tee(null, upstream, plan, spec, stored);
      const entry = await store.find(spec.key);
      if (entry?.meta) return this.d.answers.serve(ex, entry, stored, false);
      // Could not be kept after all: ask again, with the client's validators this time.
      return this.d.bypass(ex, cacheStatus({ ...fwd, detail: 'not-stored' }));
    }
    return this.tee(ex, upstream, plan, spec, stored);
  }

  /**
   * Stores a complete response given whole (a HAR import) by the rules an origin response
   * meets, keyed with its request's Vary fields; framing fields are the cache's to set.
   */
  async storeWhole(r: ResponseToStore, settings: CacheSettings): Promise<StoreOutcome> {
    const { store, report } = this.d;
    const url = new URL(r.url);
    const href = url.href;
    const raw: string[] = [];
    for (let i = 0; i + 1 < r.rawHeaders.length; i += 2) {
      const lower = r.rawHeaders[i].toLowerCase();
      if (lower !== 'content-length' && lower !== 'transfer-encoding') raw.push(r.rawHeaders[i], r.rawHeaders[i + 1]);
    }
    const headers = headerObject(raw);
    const vary = varyOf(headers);
    const policyHeaders = policyRequestHeaders(url, r.requestHeaders, vary);
    const limit = maxObjectBytes(settings, store.capacity);
    const refused = limitRefuses(settings, headers, vary, store.capacity) ?? (r.body.length > limit ? 'too-large' : null);
    if (refused) return { stored: false, reason: refused };
    const decision = storeDecision(settings, href, policyHeaders, r.status, headers);
    if (!decision.policy) return { stored: false, reason: decision.reason };
    const variants = vary ? vary.filter((v) => v !== '*') : null;
    const contentType = headers['content-type'];
    const spec: StoreSpec = {
      key: variants ? variantKey(href, variants, r.requestHeaders) : plainKey(href),
      href,
      policy: decision.policy,
      status: r.status,
      statusMessage: r.statusMessage,
      stored: prepareStoredHeaders(raw, '1.1'),
      requestHeaders: entryRequestHeaders(policyHeaders),
      vary: variants,
      contentType: typeof contentType === 'string' ? contentType : undefined,
    };
    const writer = new EntryWriter(store, spec, limit);
    writer.write(r.body);
    const outcome = await writer.end();
    if (typeof outcome === 'string') return { stored: false, reason: outcome };
    if (outcome.meta && settings.rule) outcome.meta.rule = settings.rule;
    report.event('stored', href, { key: spec.key, status: spec.status, size: r.body.length, rule: settings.rule ?? undefined });
    return { stored: true, key: spec.key };
  }

  /**
   * Streams the origin body to the client while an EntryWriter stores it. The entry appears
   * only when the body ended complete; too large, an origin dying mid-body or a disk error
   * store nothing.
   */
  private tee(ex: Exchange | null, upstream: IncomingMessage, plan: Plan, spec: StoreSpec, cacheStatusValue: string): Promise<void> {
    const res = ex?.res ?? null;
    if (ex) {
      ex.cacheOutcome = cacheStatusValue;
      ex.writeUpstreamHead(upstream, cacheStatusField(cacheStatusValue));
    }
    const writer = new EntryWriter(this.d.store, spec, maxObjectBytes(plan.settings, this.d.store.capacity));
    const declared = Number(rawHeader(upstream.rawHeaders, 'content-length'));
    const declaredLength = Number.isFinite(declared) && declared > 0 ? declared : Infinity;
    let received = 0;
    let lastChunk: Buffer | null = null;
    // The first client may already have left while others keep this fetch alive for them.
    let clientGone = res === null || res.destroyed;
    let pausedByClient = false;
    let pausedByFile = false;
    const flow = () => {
      if (pausedByClient || pausedByFile) upstream.pause();
      else upstream.resume();
    };

    return new Promise<void>((resolve, reject) => {
      let settled = false;
      const fail = (err: Error) => {
        if (settled) return;
        settled = true;
        writer.abort();
        upstream.destroy();
        if (res && !res.writableEnded) res.destroy(err);
        const reason = err instanceof ProxyError && err.status === 499 ? 'client-aborted' : 'incomplete-body';
        this.d.report.event('not-stored', plan.href, { key: spec.key, reason, status: spec.status });
        reject(err);
      };
      upstream.on('data', (chunk: Buffer) => {
        received += chunk.length;
        if (!clientGone && ex && res) {
          if (received >= declaredLength) {
            // With a Content-Length the client is done at the last byte: hold it until the entry is published.
            lastChunk = lastChunk ? Buffer.concat([lastChunk, chunk]) : chunk;
          } else if (!ex.writeBody(chunk) && !pausedByClient) {
            pausedByClient = true;
            res.once('drain', () => {
              pausedByClient = false;
              flow();
            });
            flow();
          }
        }
        if (!writer.write(chunk) && !pausedByFile) {
          pausedByFile = true;
          writer.onDrain(() => {
            pausedByFile = false;
            flow();
          });
          flow();
        }
      });
      upstream.once('aborted', () => fail(new ProxyError(502, 'the origin closed the connection mid-body', 'ECONNRESET')));
      upstream.once('error', fail);
      const onClientClose = () => {
        if (!res || res.writableFinished || settled) return;
        clientGone = true;
        const needed = (plan.fill?.waiters ?? 0) > 0;
        if (!needed) return fail(new ProxyError(499, 'the client went away mid-body', 'ABORTED'));
        // Others wait for this body: finish fetching it into the cache.
        if (pausedByClient) {
          pausedByClient = false;
          flow();
        }
      };
      // 'close' has already fired for a client that left before the body started.
      if (res?.destroyed) onClientClose();
      else res?.once('close', onClientClose);
      upstream.once('end', () => {
        if (upstream.complete === false) return fail(new ProxyError(502, 'the origin closed the connection mid-body', 'ECONNRESET'));
        if (settled) return;
        settled = true;
        const endClient = () => {
          if (ex && !clientGone) ex.endBody(lastChunk);
          resolve();
        };
        // The entry is published before the client's response ends: a client that got the
        // whole response and asks again gets a hit. Publishing is a rename and a small write.
        // The client's response line says `stored` already: the stored event is then logged at debug.
        const inResponseLine = ex !== null && cacheStatusValue.split('; ').includes('stored');
        const published = writer.end().then((outcome) => this.published(outcome, plan, spec, writer.bytes, inResponseLine));
        this.d.store.track(published);
        published.then(endClient, endClient);
      });
    });
  }

  /** Reports what became of a stored response. */
  private published(outcome: WriteOutcome, plan: Plan, spec: StoreSpec, size: number, inResponseLine: boolean): void {
    const { store, report } = this.d;
    const detail = { key: spec.key, status: spec.status, size, rule: plan.settings.rule ?? undefined };
    if (outcome === 'closed') return;
    if (typeof outcome === 'string') {
      report.event('not-stored', plan.href, { ...detail, reason: outcome });
      if (outcome === 'too-large' && plan.replacing) store.drop(plan.replacing, 'invalidated', 'replaced by a response too large to store');
      return;
    }
    if (outcome.meta && plan.settings.rule) outcome.meta.rule = plan.settings.rule;
    if (plan.replacing) report.event('revalidated', plan.href, { ...detail, reason: 'replaced' });
    else if (plan.prefetch) report.event('prefetched', plan.href, detail);
    if (inResponseLine) report.storedInResponse(plan.href, detail);
    else report.event('stored', plan.href, detail);
    if (plan.settings.prefetchLinks > 0 && !plan.prefetch && /^text\/html\b/i.test(spec.contentType ?? '')) this.d.storedPage(outcome, plan.settings);
  }
}
