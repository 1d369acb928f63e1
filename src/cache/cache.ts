import { STATUS_CODES, type IncomingHttpHeaders, type IncomingMessage } from 'node:http';
import CachePolicy from 'http-cache-semantics';
import { LRUCache } from 'lru-cache';
import type { CacheConfig } from '../core/config';
import type { CacheAction } from '../core/events';
import { ProxyError, type Exchange, type QuickAnswer, type QuickPassThrough, type QuickResponder, type UpstreamRequest } from '../core/exchange';
import { countBytes, fetchAsIs, relayResponse, responseHasNoBody, VIA_NAME, writeUpstreamHead } from '../core/forward';
import { requestHasBody } from '../core/headers';
import { CorruptEntryError, DiskStore, hashKey, toRecord, type BodyWriter, type EntryMeta, type IndexRecord } from './disk';
import {
  contentTypeMatcher,
  etagMatches,
  headerObject,
  headerValue,
  mergeNotModified,
  parseCacheControl,
  prepareStoredHeaders,
  rawHeader,
} from './headers';
import { extractSameOriginLinks } from './prefetch';
import type { CacheDeps, CacheEntrySummary, CacheStats, HttpCache, StoredResponse } from './types';
import { bodyDigestOf } from './digest';

const MiB = 1024 * 1024;
const UNSAFE_METHODS = new Set(['POST', 'PUT', 'DELETE', 'PATCH']);
/** Prefetches running at once: a page with 50 images must not open 50 origin connections. */
const PREFETCH_CONCURRENCY = 4;
/** HTML pages larger than this are not parsed for prefetch links. */
const PREFETCH_MAX_HTML = 2 * MiB;
/** Links waiting to be prefetched; beyond this, new pages' links are dropped (browsing outpaces the origin). */
const PREFETCH_QUEUE_MAX = 1000;
const RESOLVED = Promise.resolve();
/** Read size when streaming a body from disk. */
const DISK_READ_CHUNK = 1024 * 1024;
/** Up to this body size a quick answer copies the body in behind the head and is sent with one write. */
const QUICK_COPY_MAX = 16 * 1024;
/** Requests within one second after which an entry's quick answer is reused for the rest of that second. */
const QUICK_HOT_REQUESTS = 4;

/** The header fields every answer from a stored entry carries: the stored ones, Age and Cache-Status. */
function storedWithAge(meta: LoadedMeta, cacheStatus: string): string[] {
  return meta.raw.concat('Age', String(ageAt(meta, Date.now())), 'Cache-Status', 'caching-proxy; ' + cacheStatus);
}

/** Status line and stored fields of a quick answer, framed by the stored body's length whatever the origin's framing was. */
function quickFixedPart(status: number, meta: LoadedMeta, bodyLength: number): string {
  const lines = [`HTTP/1.1 ${status} ${meta.statusMessage || STATUS_CODES[status] || 'Unknown'}\r\n`];
  const raw = meta.raw;
  for (let i = 0; i < raw.length; i += 2) {
    const lower = raw[i].toLowerCase();
    if (lower !== 'content-length' && lower !== 'transfer-encoding') lines.push(`${raw[i]}: ${raw[i + 1]}\r\n`);
  }
  lines.push(`Content-Length: ${bodyLength}\r\n`);
  // join() gives one flat string (a += chain would be a rope each answer walks).
  return lines.join('');
}

let dateSecond = -1;
let dateText = '';
/** The IMF-fixdate of an epoch second, remembered for the current second. */
function httpDate(second: number): string {
  if (second !== dateSecond) {
    dateSecond = second;
    dateText = new Date(second * 1000).toUTCString();
  }
  return dateText;
}

/** The Age field's value at `now` (whole seconds). */
function ageAt(meta: LoadedMeta, now: number): number {
  return Math.round((now - meta.ageZeroAt) / 1000);
}

/** Why a URL's responses are not stored, and what the response that said so looked like. */
interface UncacheableMark {
  reason: string;
  signature: string;
  /** Plain requests for the URL may take the quick pass-through. */
  quick: boolean;
}

const SIGNATURE_VALUES = new Set(['cache-control', 'pragma', 'vary', 'content-type']);
const SIGNATURE_PRESENCE = new Set(['expires', 'last-modified', 'etag', 'set-cookie', 'authorization']);

/** What of a response decides whether it can be stored: status, directives, and which validators it has. `lower`: the names in lower case, if known. */
function responseSignature(status: number, raw: string[], lower?: string[]): string {
  let signature = String(status);
  for (let i = 0; i < raw.length; i += 2) {
    const name = lower === undefined ? raw[i].toLowerCase() : lower[i >> 1];
    if (SIGNATURE_VALUES.has(name)) signature += `\n${name}: ${raw[i + 1]}`;
    else if (SIGNATURE_PRESENCE.has(name)) signature += `\n${name}`;
  }
  return signature;
}

/** A request that asks for nothing but a stored response: no directives, validators or ranges of its own. */
function asksOnlyForStored(h: IncomingHttpHeaders): boolean {
  return h['cache-control'] === undefined && h.pragma === undefined && h['if-none-match'] === undefined && h['if-modified-since'] === undefined && h.range === undefined;
}

/** What the hot path needs of an entry once its metadata is loaded. */
interface LoadedMeta {
  statusMessage: string;
  raw: string[];
  policy: CachePolicy;
  /**
   * The policy requests are evaluated against. http-cache-semantics 4.3 revalidates every
   * must-revalidate response even while fresh; RFC 9111 §5.2.2.2 only forbids serving it
   * stale. So freshness is judged without the directive, and staleness is checked separately.
   */
  evalPolicy: CachePolicy;
  /** A plain request (no Cache-Control) may be answered without asking the policy again while now < freshUntil. */
  fastOk: boolean;
  mustRevalidate: boolean;
  /**
   * Epoch ms at which the response's age was zero: its age grows one second per second from
   * there (RFC 9111 §4.2.3), so a hit need not ask the policy (and touch its header objects).
   */
  ageZeroAt: number;
  /** The request headers this entry was stored for (host + Vary-named), for background revalidation. */
  requestHeaders: Record<string, string>;
  /** The quick answer's status line and stored fields through Content-Length (see quickAnswer). */
  quickFixed?: string;
  /** The quick answer reused while the entry is hot, and how often it was asked for in `quickSecond` (Age, ttl and Date change by the second). */
  quick?: QuickAnswer;
  quickSecond?: number;
  quickAsked: number;
}

interface Entry extends IndexRecord {
  meta: LoadedMeta | null;
  /** The body, when the entry is in the memory tier (always, without a disk tier). */
  body: Buffer | null;
  onDisk: boolean;
}

/** One origin fetch for a key that others may wait on. */
interface Fill {
  promise: Promise<void>;
  waiters: number;
}

/** Why and how a response goes to the client and (maybe) the store. */
interface Plan {
  url: URL;
  href: string;
  /** Cache-Status forward parameter: miss, stale, request, vary-miss. */
  fwd: string;
  /** The request headers the policy sees (host, cache-control, pragma, authorization, Vary-named). */
  requestHeaders: IncomingHttpHeaders;
  replacing: Entry | null;
  prefetch: boolean;
  fill: Fill | null;
  /** The client sent validators we did not forward: answer it from the stored entry once stored. */
  deferClient?: boolean;
}

/** A response on its way into the store. */
interface StoreSpec {
  key: string;
  policy: CachePolicy;
  status: number;
  statusMessage: string;
  stored: string[];
  requestHeaders: Record<string, string>;
  vary: string[] | null;
  contentType?: string;
  cacheStatus: string;
}

type PolicyMode = 'shared' | 'private' | 'always';

export class Cache implements HttpCache {
  private config: CacheConfig;
  private disk: DiskStore | null = null;
  private diskWarned = false;
  private index!: LRUCache<string, Entry>;
  /** Disk mode only: the entries whose bodies are held in memory, LRU by bytes. */
  private hot: LRUCache<string, Entry> | null = null;
  private memoryShare = 0;
  private excluded: (contentType: string | undefined) => boolean = () => false;
  /** URL -> request header names its responses vary on (from the latest stored one). */
  private readonly varyByUrl = new Map<string, string[]>();
  /** URL -> keys of its stored variants, for invalidation and purge. */
  private readonly keysByUrl = new Map<string, Set<string>>();
  private readonly fills = new Map<string, Fill>();
  private readonly pendingWrites = new Set<Promise<unknown>>();
  private admissions = new LRUCache<string, number>({ max: 50_000 });
  /**
   * URLs whose last response could not be stored (no-store, private, Set-Cookie, too large...).
   * Requests for them do not queue behind one another's fetch, which would serialise an
   * uncacheable API under load (Varnish's "hit-for-miss"); a storable response clears the mark.
   * Plain requests for a marked URL are forwarded by the server's quick pass-through.
   */
  private readonly uncacheable = new LRUCache<string, UncacheableMark>({ max: 10_000, ttl: 120_000 });
  private prefetchQueue: string[] = [];
  private prefetchRunning = 0;
  private hits = 0;
  private misses = 0;
  private closed = false;
  /** Cancels background fetches (prefetch, revalidation) when the cache closes. */
  private readonly shutdown = new AbortController();

  readonly handler = (ex: Exchange): Promise<void> => {
    // The fresh-hit fast path: synchronous, no policy evaluation, headers prepared at store time.
    const h = ex.req.headers;
    if (
      (ex.method === 'GET' || ex.method === 'HEAD') &&
      asksOnlyForStored(h) &&
      // A GET/HEAD with a body is not answered before its body has been read (and checked) by the slow path.
      h['transfer-encoding'] === undefined &&
      (h['content-length'] === undefined || h['content-length'] === '0') &&
      this.config.policy !== 'offline'
    ) {
      const entry = this.freshInMemory(ex.url.href, h);
      if (entry !== null) {
        this.serveBody(ex, entry, entry.body!, `hit; ttl=${Math.round((entry.freshUntil - Date.now()) / 1000)}`, false);
        return RESOLVED;
      }
    }
    return this.handle(ex);
  };

  /** The server's quick path (plain GET/HEAD, no body): a fresh in-memory hit, serialised, or null. */
  readonly quick: QuickResponder = (request) => {
    if (this.config.policy === 'offline' || !asksOnlyForStored(request.headers)) return null;
    const entry = this.freshInMemory(request.href, request.headers);
    if (entry === null || responseHasNoBody('GET', entry.status)) return null;
    this.countHit(entry);
    return this.quickAnswer(entry, entry.meta!, entry.body!, request.method === 'HEAD');
  };

  /**
   * The server's quick pass-through: plain requests for a URL whose last response could not be
   * stored (hit-for-miss) are forwarded without the cache. Should the origin's answer change in
   * what decides storability, the mark goes and the next request takes the ordinary path again.
   */
  readonly quickPass: QuickPassThrough = {
    decide: (request) => {
      if (this.config.policy === 'offline' || !asksOnlyForStored(request.headers) || request.headers.authorization !== undefined) return null;
      const mark = this.uncacheable.get(request.href);
      // Stored variants of the URL (Vary): the ordinary path chooses among them.
      if (mark === undefined || !mark.quick || this.keysByUrl.has(request.href)) return null;
      this.misses++;
      this.emit('miss', request.href, { key: 'GET ' + request.href });
      return `fwd=miss; detail=${mark.reason}`;
    },
    responded: (request, status, rawHeaders, lowerNames) => {
      const mark = this.uncacheable.peek(request.href);
      if (mark !== undefined && responseSignature(status, rawHeaders, lowerNames) !== mark.signature) this.uncacheable.delete(request.href);
      this.emit('not-stored', request.href, { reason: mark?.reason ?? 'not-storable', status });
    },
  };

  /** A stored response that answers a plain request as it is: in memory, fresh, no policy evaluation needed. */
  private freshInMemory(href: string, headers: IncomingHttpHeaders): Entry | null {
    const entry = this.index.get(this.keyFor(href, headers));
    if (entry === undefined || entry.body === null || entry.meta === null || !entry.meta.fastOk || Date.now() >= entry.freshUntil) return null;
    this.hot?.get(entry.key);
    return entry;
  }

  /**
   * The serialised answer for an entry. Its fixed part (status line, stored fields,
   * Content-Length) is built once per metadata; Age, Cache-Status and Date per request. A small
   * body is copied in behind the head, for one write.
   *
   * An entry asked for QUICK_HOT_REQUESTS times within one second reuses its answer for the
   * rest of that second. Only then: an answer kept any longer than a young-generation cycle is
   * promoted, and with 100,000 entries each asked for now and then, keeping every answer for
   * its second filled the old generation and brought 70 ms collections.
   */
  private quickAnswer(entry: Entry, meta: LoadedMeta, body: Buffer, headOnly: boolean): QuickAnswer {
    const now = Date.now();
    const second = Math.floor(now / 1000);
    if (meta.quickSecond === second) {
      if (!headOnly && meta.quick !== undefined) return meta.quick;
      meta.quickAsked++;
    } else {
      meta.quickSecond = second;
      meta.quickAsked = 1;
      meta.quick = undefined;
    }
    const outcome = `hit; ttl=${Math.round((entry.freshUntil - now) / 1000)}`;
    const fixed = (meta.quickFixed ??= quickFixedPart(entry.status, meta, body.length));
    const perRequest = `Age: ${ageAt(meta, now)}\r\nCache-Status: caching-proxy; ${outcome}\r\nDate: ${httpDate(second)}\r\n\r\n`;
    const headLength = fixed.length + perRequest.length;
    const copyBody = !headOnly && body.length <= QUICK_COPY_MAX;
    const head = Buffer.allocUnsafe(headLength + (copyBody ? body.length : 0));
    head.write(fixed, 0, 'latin1');
    head.write(perRequest, fixed.length, 'latin1');
    if (copyBody) body.copy(head, headLength);
    const answer: QuickAnswer = { status: entry.status, head, body: headOnly || copyBody ? null : body, bodyLength: headOnly ? 0 : body.length, outcome };
    // Only a copied-in body: the kept answer then holds no buffer the memory tier may let go.
    if (copyBody && meta.quickAsked >= QUICK_HOT_REQUESTS) meta.quick = answer;
    return answer;
  }

  constructor(
    config: CacheConfig,
    private readonly deps: CacheDeps,
  ) {
    this.config = config;
    this.configureLimits(config, []);
  }

  async init(): Promise<void> {
    await this.openDisk(this.config.dir);
  }

  // ---------------------------------------------------------------- storage tiers

  private get diskMode(): boolean {
    return this.disk !== null;
  }

  private indexCapacity(config: CacheConfig): number {
    const disk = Math.floor(config.maxSizeMB * MiB);
    return this.diskMode ? disk : Math.min(disk, Math.floor(config.maxMemoryMB * MiB));
  }

  /** (Re)builds both LRUs for new limits, keeping entries (least recent first, so order survives). */
  private configureLimits(config: CacheConfig, carry: Entry[]): void {
    this.config = config;
    this.excluded = contentTypeMatcher(config.excludeContentTypes);
    const memoryBytes = Math.floor(config.maxMemoryMB * MiB);
    this.memoryShare = this.diskMode ? Math.floor(memoryBytes / 8) : Math.min(memoryBytes, this.indexCapacity(config));
    this.index = new LRUCache<string, Entry>({
      max: config.maxEntries,
      maxSize: Math.max(1, this.indexCapacity(config)),
      sizeCalculation: (e) => Math.max(1, e.size),
      dispose: (entry, key, reason) => this.onIndexDispose(entry, key, reason),
    });
    this.hot =
      this.diskMode && memoryBytes > 0
        ? new LRUCache<string, Entry>({
            maxSize: memoryBytes,
            sizeCalculation: (e) => Math.max(1, e.size),
            dispose: (entry, key, reason) => {
              // Still listed and on disk; only the memory copy goes.
              if (entry.onDisk) entry.body = null;
              // Held only here (its disk write failed): out of memory means out of the cache.
              else if (reason === 'evict') queueMicrotask(() => {
                if (this.index.peek(key) === entry) this.index.delete(key);
              });
            },
          })
        : null;
    for (const entry of carry) {
      if (!this.diskMode && entry.body === null) continue;
      if (entry.body && entry.size > this.memoryShare && entry.onDisk) entry.body = null;
      this.insert(entry);
    }
  }

  private onIndexDispose(entry: Entry, key: string, reason: LRUCache.DisposeReason): void {
    this.hot?.delete(key);
    if (reason === 'set') return; // Replaced by a new entry for the key, which owns the files now.
    const keys = this.keysByUrl.get(entry.url);
    if (keys) {
      keys.delete(key);
      if (keys.size === 0) {
        this.keysByUrl.delete(entry.url);
        this.varyByUrl.delete(entry.url);
      }
    }
    if (entry.onDisk && this.disk) this.track(this.disk.remove(entry.hash));
    if (reason === 'evict') this.emit('evicted', entry.url, { key, reason: 'lru', size: entry.size, status: entry.status });
  }

  private insert(entry: Entry): void {
    this.index.set(entry.key, entry);
    if (!this.index.has(entry.key)) return;
    let keys = this.keysByUrl.get(entry.url);
    if (!keys) this.keysByUrl.set(entry.url, (keys = new Set()));
    keys.add(entry.key);
    if (entry.vary) this.varyByUrl.set(entry.url, entry.vary);
    else this.varyByUrl.delete(entry.url);
    if (entry.body && this.hot) this.hot.set(entry.key, entry);
  }

  private async openDisk(dir: string | null): Promise<void> {
    this.disk = null;
    if (!dir) {
      this.configureLimits(this.config, []);
      return;
    }
    const started = performance.now();
    let records: IndexRecord[] = [];
    let fromIndex = false;
    try {
      const opened = await DiskStore.open(dir);
      this.disk = opened.store;
      records = opened.records;
      fromIndex = opened.fromIndex;
    } catch (err) {
      this.warnDisk(err, dir);
    }
    this.configureLimits(this.config, []);
    for (const r of records) {
      // Completed in place: 100,000 copies would cost more than the reading.
      const entry = r as Entry;
      entry.meta = null;
      entry.body = null;
      entry.onDisk = true;
      this.insert(entry);
    }
    if (records.length) {
      this.deps.events.emit({
        type: 'notice',
        level: 'info',
        message: `cache: ${this.index.size} entries loaded from ${dir} in ${Math.round(performance.now() - started)} ms${fromIndex ? '' : ' (metadata scan)'}`,
      });
    }
  }

  private warnDisk(err: unknown, dir = this.config.dir): void {
    if (this.diskWarned) return;
    this.diskWarned = true;
    const e = err as NodeJS.ErrnoException;
    const why = e.code === 'ENOSPC' ? 'the disk is full' : e.code === 'EROFS' || e.code === 'EACCES' || e.code === 'EPERM' ? 'it is not writable' : e.message;
    this.deps.events.emit({
      type: 'notice',
      level: 'warn',
      message: `cache: cannot write to ${dir} (${why}); proxying continues, responses are kept in memory only`,
    });
  }

  private track<T>(p: Promise<T>): void {
    const guarded = p.catch(() => {});
    this.pendingWrites.add(guarded);
    void guarded.then(() => this.pendingWrites.delete(guarded));
  }

  /** Loads an entry's metadata from disk on first use after a restart; null (entry dropped) if unreadable. */
  private async ensureMeta(entry: Entry): Promise<LoadedMeta | null> {
    if (entry.meta) return entry.meta;
    if (!this.disk) return null;
    try {
      const meta = await this.disk.readMeta(entry.hash);
      if (meta.key !== entry.key) throw new CorruptEntryError('metadata belongs to another key');
      const policy = CachePolicy.fromObject(meta.policy);
      entry.meta = this.loadedMeta(policy, meta.statusMessage, meta.raw, requestHeadersOf(meta.policy));
      entry.freshUntil = freshUntil(policy);
      return entry.meta;
    } catch (err) {
      this.drop(entry, 'corrupt', err instanceof CorruptEntryError ? err.reason : 'metadata unreadable');
      return null;
    }
  }

  private loadedMeta(policy: CachePolicy, statusMessage: string, raw: string[], requestHeaders: Record<string, string>): LoadedMeta {
    const obj = policy.toObject();
    const url = obj.u ?? '';
    let evalPolicy = policy;
    const mustRevalidate = obj.rescc['must-revalidate'] !== undefined;
    if (mustRevalidate) {
      const rescc = { ...obj.rescc };
      delete rescc['must-revalidate'];
      evalPolicy = CachePolicy.fromObject({ ...obj, rescc });
    }
    return {
      statusMessage,
      raw,
      policy,
      evalPolicy,
      fastOk: evalPolicy.satisfiesWithoutRevalidation({ url, method: 'GET', headers: requestHeaders }),
      mustRevalidate,
      ageZeroAt: Date.now() - policy.age() * 1000,
      quickAsked: 0,
      requestHeaders,
    };
  }

  /** The body in memory, reading (and checking) it from disk if it is small enough to keep; null if it must be streamed. */
  private async memoryBody(entry: Entry): Promise<Buffer | null> {
    if (entry.body) return entry.body;
    if (!this.disk || entry.size > this.memoryShare) return null;
    const body = await this.disk.readBody(entry.hash, entry.digest, entry.size);
    if (this.index.peek(entry.key) === entry && this.hot) {
      entry.body = body;
      this.hot.set(entry.key, entry);
    }
    return body;
  }

  private drop(entry: Entry, action: CacheAction, reason: string): void {
    if (this.index.peek(entry.key) === entry) this.index.delete(entry.key);
    this.emit(action, entry.url, { key: entry.key, reason, size: entry.size, status: entry.status });
  }

  private emit(action: CacheAction, url: string, extra: { key?: string; reason?: string; size?: number; status?: number } = {}): void {
    if (this.deps.events.active) this.deps.events.emit({ type: 'cache', action, url, ...extra });
  }

  // ---------------------------------------------------------------- keys and policies

  private keyFor(href: string, headers: IncomingHttpHeaders): string {
    const vary = this.varyByUrl.get(href);
    return vary ? variantKey(href, vary, headers) : 'GET ' + href;
  }

  private get mode(): PolicyMode {
    return this.config.policy === 'private' ? 'private' : this.config.policy === 'always' ? 'always' : 'shared';
  }

  /**
   * The policy for a response about to be stored, or why it is not stored. RFC 9111 rules come
   * from http-cache-semantics; `ttl` only stands in for freshness the response does not state
   * (and for everything under `always`).
   */
  private policyFor(
    href: string,
    requestHeaders: IncomingHttpHeaders,
    status: number,
    headers: Record<string, string | string[]>,
  ): { policy: CachePolicy; reason?: undefined } | { reason: string; policy?: undefined } {
    const mode = this.mode;
    const ttl = Math.floor(this.config.ttl);
    const req = { url: href, method: 'GET', headers: requestHeaders };
    if (mode === 'always') {
      if (status < 200 || status >= 300) return { reason: `status-${status}` };
      const forced: Record<string, string | string[]> = { ...headers, 'cache-control': `max-age=${ttl}` };
      delete forced.expires;
      delete forced.pragma;
      if (forced.vary === '*') delete forced.vary;
      const plainReq = { ...req, headers: { ...requestHeaders } };
      delete plainReq.headers.authorization;
      delete plainReq.headers['cache-control'];
      delete plainReq.headers.pragma;
      const policy = new CachePolicy(plainReq, { status, headers: forced }, { shared: false });
      return policy.storable() ? { policy } : { reason: `status-${status}` };
    }
    const shared = mode === 'shared';
    const options = { shared, immutableMinTimeToLive: 24 * 3600 * 1000 };
    const policy = new CachePolicy(req, { status, headers }, options);
    const cc = parseCacheControl(headers['cache-control']);
    if (!policy.storable()) {
      const reqcc = parseCacheControl(requestHeaders['cache-control']);
      if (cc.has('no-store') || reqcc.has('no-store')) return { reason: 'no-store' };
      if (shared && cc.has('private')) return { reason: 'private' };
      if (shared && requestHeaders.authorization) return { reason: 'authorization' };
      return { reason: `status-${status}` };
    }
    if (shared && headers['set-cookie'] && !cc.has('public') && !cc.has('immutable')) {
      // Storable by the letter of RFC 9111, but one user's cookie must not be handed to another.
      return { reason: 'set-cookie' };
    }
    // `immutable` counts as stated freshness: the library gives it immutableMinTimeToLive.
    const explicit = cc.has('max-age') || (shared && cc.has('s-maxage')) || headers.expires !== undefined || cc.has('immutable');
    const noCache = cc.has('no-cache') || (headers['cache-control'] === undefined && /no-cache/.test(String(headers.pragma ?? '')));
    if (!explicit && !noCache) {
      const withTtl = { ...headers, 'cache-control': [headers['cache-control'], `max-age=${ttl}`].filter(Boolean).join(', ') };
      return { policy: new CachePolicy(req, { status, headers: withTtl }, options) };
    }
    return { policy };
  }

  /** The request as the policy sees it: only what RFC 9111 consults, so no cookies end up in metadata. */
  private policyHeaders(url: URL, h: IncomingHttpHeaders, vary: string[] | null): IncomingHttpHeaders {
    const out: IncomingHttpHeaders = { host: url.host };
    if (h['cache-control'] !== undefined) out['cache-control'] = headerValue(h, 'cache-control');
    if (h.pragma !== undefined) out.pragma = h.pragma;
    if (h.authorization !== undefined) out.authorization = 'present';
    if (vary) for (const name of vary) if (h[name] !== undefined) out[name] = headerValue(h, name);
    return out;
  }

  // ---------------------------------------------------------------- request handling

  private async handle(ex: Exchange, waited = false): Promise<void> {
    const policy = this.config.policy;
    const withBody = requestHasBody(ex.req.headers);
    if (policy === 'offline') {
      if (withBody) return this.gatewayTimeout(ex, 'detail=offline', `offline: a ${ex.method} with a body cannot be answered from the cache`);
      return this.handleOffline(ex);
    }
    if (ex.method !== 'GET' && ex.method !== 'HEAD') return this.forwardUncached(ex);
    if (withBody) return this.bypass(ex, 'fwd=bypass; detail=request-body');

    const href = ex.url.href;
    const h = ex.req.headers;
    const reqcc = parseCacheControl(h['cache-control']);
    const onlyIfCached = reqcc.has('only-if-cached');
    const key = this.keyFor(href, h);
    let entry = this.index.get(key) ?? null;
    let meta = entry ? await this.ensureMeta(entry) : null;
    if (!meta) entry = null;

    if (entry && meta) {
      const req = { url: href, method: 'GET', headers: this.policyHeaders(ex.url, h, entry.vary) };
      const evaluation = meta.evalPolicy.evaluateRequest(req);
      const staleForbidden = meta.mustRevalidate && meta.policy.stale();
      // max-age=0 (a browser reload) always means "ask the origin", even for an entry stored this very millisecond.
      const reload = reqcc.get('max-age') === '0';
      if (!evaluation.revalidation && !staleForbidden && !reload) {
        return this.serveStored(ex, entry, `hit; ttl=${ttlSeconds(entry)}`);
      }
      if (evaluation.response && evaluation.revalidation && !evaluation.revalidation.synchronous && !staleForbidden && !reload) {
        // stale-while-revalidate: answer now, refresh behind the client's back.
        this.emit('served-stale', href, { key, reason: 'stale-while-revalidate', status: entry.status });
        this.backgroundRevalidate(entry);
        return this.serveStored(ex, entry, `hit; ttl=${ttlSeconds(entry)}; detail=stale-while-revalidate`);
      }
      if (onlyIfCached) return this.gatewayTimeout(ex, 'detail=only-if-cached', `only-if-cached: the stored response for ${href} needs revalidation`);
      if (ex.method === 'HEAD') {
        // A HEAD never refreshes the stored GET; forward it as is.
        return this.bypass(ex, 'fwd=stale; detail=head');
      }
      const fwd = Date.now() < entry.freshUntil ? 'request' : 'stale';
      const plain = fwd === 'stale' && h['if-none-match'] === undefined && h['if-modified-since'] === undefined;
      const running = this.fills.get(key);
      if (plain && running && !waited) {
        // Another request is revalidating this entry (an expiry stampede): wait, then answer from its outcome.
        await this.joinFill(running, href, key);
        return this.handle(ex, true);
      }
      if (!plain || running) return this.revalidateAndServe(ex, entry, fwd);
      const current = entry;
      return this.startFill(key, (fill) => this.revalidateAndServe(ex, current, fwd, fill)).promise;
    }

    if (onlyIfCached) return this.gatewayTimeout(ex, 'detail=only-if-cached', `only-if-cached: ${href} is not in the cache`);
    if (ex.method === 'HEAD') return this.bypass(ex, 'fwd=miss');
    if (h.range !== undefined) return this.bypass(ex, 'fwd=miss; detail=range');
    return this.miss(ex, key, this.keysByUrl.has(href) ? 'vary-miss' : 'miss');
  }

  private async miss(ex: Exchange, key: string, fwd: string): Promise<void> {
    const href = ex.url.href;
    const plain = ex.req.headers['if-none-match'] === undefined && ex.req.headers['if-modified-since'] === undefined;
    const running = this.uncacheable.has(href) ? undefined : this.fills.get(key);
    if (running) {
      // Someone is already fetching this: wait for it and answer from what it stored.
      await this.joinFill(running, href, key);
      const entry = this.index.get(this.keyFor(href, ex.req.headers));
      if (entry && (await this.ensureMeta(entry))) {
        this.hits++;
        return this.serveStored(ex, entry, `fwd=${fwd}; collapsed`, false);
      }
      // It was not stored (no-store, too large, failed): fetch for ourselves.
    }
    this.misses++;
    this.emit('miss', href, { key });
    const fetch = (fill: Fill) => this.fetchAndAnswer(ex, fwd, null, fill, undefined, !plain);
    // Nobody waits on a fetch for an uncacheable URL, nor replaces one already registered.
    if (running || this.uncacheable.has(href) || this.fills.has(key)) return fetch({ promise: RESOLVED, waiters: 0 });
    return this.startFill(key, fetch).promise;
  }

  /** Registers the fetch under way for a key so concurrent requests join it; it unregisters itself when settled. */
  private startFill(key: string, run: (fill: Fill) => Promise<void>): Fill {
    const fill: Fill = { promise: RESOLVED, waiters: 0 };
    fill.promise = run(fill);
    this.fills.set(key, fill);
    void fill.promise.catch(() => {}).then(() => {
      if (this.fills.get(key) === fill) this.fills.delete(key);
    });
    return fill;
  }

  /** Waits for a fetch already under way; counted, so the fetch is not cancelled while others wait for it. */
  private async joinFill(running: Fill, href: string, key: string): Promise<void> {
    running.waiters++;
    this.emit('coalesced', href, { key });
    try {
      await running.promise.catch(() => {});
    } finally {
      running.waiters--;
    }
  }

  /** Fetches the target for a client (or none: prefetch, background refresh) and stores what may be stored. */
  private async fetchAndAnswer(ex: Exchange | null, fwd: string, replacing: Entry | null, fill: Fill | null, url?: URL, deferClient = false): Promise<void> {
    const target = ex ? ex.url : url!;
    let headers = ex ? ex.forwardHeaders : { accept: '*/*', via: `1.1 ${VIA_NAME}` };
    if (deferClient) {
      // The client has a copy (a browser's own cache): fetch the full response so the cache fills,
      // then answer the client's validators from it (RFC 9111 §4.3.2).
      headers = { ...headers };
      delete headers['if-none-match'];
      delete headers['if-modified-since'];
    }
    let count = 1;
    if (this.config.admitAfter > 1 && ex) {
      count += this.admissions.get(target.href) ?? 0;
      this.admissions.set(target.href, count);
    }
    if (ex) ex.cacheOutcome = `fwd=${fwd}`;
    const upstream = await this.deps.origin.fetch({
      method: 'GET',
      url: target,
      headers,
      ...(ex ? this.abortUnlessAwaited(ex, fill) : { signal: this.shutdown.signal }),
    });
    const plan: Plan = {
      url: target,
      href: target.href,
      fwd,
      requestHeaders: ex ? ex.req.headers : {},
      replacing,
      prefetch: ex === null && replacing === null,
      fill,
      deferClient,
    };
    return this.storeOrRelay(ex, upstream, plan, ex === null || count >= this.config.admitAfter ? null : `admit-after-${this.config.admitAfter}`);
  }

  /** Cancels the origin request when its client goes away, unless coalesced requests wait for the body. */
  /** The origin request stops when its client leaves, unless other requests wait for its response. */
  private abortUnlessAwaited(ex: Exchange, fill: Fill | null): Pick<UpstreamRequest, 'client' | 'othersWaiting'> {
    return { client: ex.res, othersWaiting: () => (fill?.waiters ?? 0) > 0 };
  }

  /** Decides whether a fresh origin response is stored; relays it to the client either way. */
  private async storeOrRelay(ex: Exchange | null, upstream: IncomingMessage, plan: Plan, admission: string | null): Promise<void> {
    const status = upstream.statusCode ?? 502;
    const headers = headerObject(upstream.rawHeaders);
    const varyHeader = typeof headers.vary === 'string' ? headers.vary : undefined;
    const vary = varyHeader ? varyHeader.toLowerCase().split(',').map((s) => s.trim()).filter(Boolean) : null;
    let reason: string | null = admission;
    let policy: CachePolicy | null = null;
    const policyHeaders = this.policyHeaders(plan.url, plan.requestHeaders, vary);
    if (!reason && vary?.includes('*') && this.mode !== 'always') reason = 'vary-star';
    if (!reason && this.excluded(typeof headers['content-type'] === 'string' ? headers['content-type'] : undefined)) reason = 'excluded-type';
    const declared = Number(headers['content-length']);
    if (!reason && Number.isFinite(declared) && declared > this.maxObjectBytes()) reason = 'too-large';
    if (!reason && this.indexCapacity(this.config) <= 0) reason = 'no-capacity';
    if (!reason) {
      const decision = this.policyFor(plan.href, policyHeaders, status, headers);
      if (decision.reason) reason = decision.reason;
      else policy = decision.policy ?? null;
    }
    const fwdParams = plan.fwd === 'miss' || plan.fwd === 'vary-miss' ? `fwd=${plan.fwd}` : `fwd=${plan.fwd}; fwd-status=${status}`;

    if (!policy) {
      // Reasons that belong to the response, not to this moment (admission count, capacity).
      if (reason !== admission && reason !== 'no-capacity') {
        this.uncacheable.set(plan.href, {
          reason: reason ?? 'not-storable',
          signature: responseSignature(status, upstream.rawHeaders),
          // Unstorable because the request carried credentials: says nothing about requests without them.
          quick: plan.requestHeaders.authorization === undefined,
        });
      }
      if (plan.replacing && status < 500) this.drop(plan.replacing, 'invalidated', `replaced by an unstorable ${status}`);
      this.emit('not-stored', plan.href, { reason: reason ?? 'not-storable', status });
      const cacheStatus = `${fwdParams}; detail=${reason ?? 'not-storable'}`;
      if (!ex) {
        upstream.resume();
        return;
      }
      ex.cacheOutcome = cacheStatus;
      return relayResponse(ex, upstream, ['Cache-Status', `caching-proxy; ${cacheStatus}`]);
    }

    this.uncacheable.delete(plan.href);
    const key = vary ? variantKey(plan.href, vary.filter((v) => v !== '*'), plan.requestHeaders) : 'GET ' + plan.href;
    const stored = prepareStoredHeaders(upstream.rawHeaders, upstream.httpVersion);
    const entryHeaders: Record<string, string> = {};
    for (const k in policyHeaders) if (k !== 'cache-control' && k !== 'pragma' && k !== 'authorization') entryHeaders[k] = String(policyHeaders[k]);
    if (ex && plan.deferClient) {
      ex.cacheOutcome = `${fwdParams}; stored`;
      await this.tee(null, upstream, plan, { key, policy, status, statusMessage: upstream.statusMessage ?? '', stored, requestHeaders: entryHeaders, vary: vary ? vary.filter((v) => v !== '*') : null, contentType: typeof headers['content-type'] === 'string' ? headers['content-type'] : undefined, cacheStatus: `${fwdParams}; stored` });
      const entry = this.index.get(key);
      if (entry?.meta) return this.serveStored(ex, entry, `${fwdParams}; stored`, false);
      // Could not be kept after all: ask again, with the client's validators this time.
      return this.bypass(ex, `${fwdParams}; detail=not-stored`);
    }
    return this.tee(ex, upstream, plan, {
      key,
      policy,
      status,
      statusMessage: upstream.statusMessage ?? '',
      stored,
      requestHeaders: entryHeaders,
      vary: vary ? vary.filter((v) => v !== '*') : null,
      contentType: typeof headers['content-type'] === 'string' ? headers['content-type'] : undefined,
      cacheStatus: `${fwdParams}; stored`,
    });
  }

  private maxObjectBytes(): number {
    return Math.min(Math.floor(this.config.maxObjectSizeMB * MiB), this.indexCapacity(this.config));
  }

  /**
   * Streams the origin body to the client while writing it to a temp file (and memory, if
   * small): the slower of client and disk paces the origin. The entry appears only when the
   * body ended complete; too large, an origin dying mid-body or a disk error store nothing.
   */
  private tee(
    ex: Exchange | null,
    upstream: IncomingMessage,
    plan: Plan,
    s: StoreSpec,
  ): Promise<void> {
    const res = ex?.res ?? null;
    if (ex && res) {
      ex.cacheOutcome = s.cacheStatus;
      writeUpstreamHead(ex, upstream, ['Cache-Status', `caching-proxy; ${s.cacheStatus}`]);
    }
    const maxObject = this.maxObjectBytes();
    let writer: BodyWriter | null = null;
    if (this.disk) {
      try {
        writer = this.disk.newWriter();
      } catch (err) {
        this.warnDisk(err);
      }
    }
    const declared = Number(rawHeader(upstream.rawHeaders, 'content-length'));
    const declaredLength = Number.isFinite(declared) && declared > 0 ? declared : Infinity;
    let lastChunk: Buffer | null = null;
    let chunks: Buffer[] | null = this.memoryShare > 0 ? [] : null;
    let size = 0;
    let tooLarge = false;
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
        writer?.abort();
        upstream.destroy();
        if (res && !res.writableEnded) res.destroy(err);
        const reason = err instanceof ProxyError && err.status === 499 ? 'client-aborted' : 'incomplete-body';
        this.emit('not-stored', plan.href, { key: s.key, reason, status: s.status });
        reject(err);
      };
      upstream.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (!clientGone && res) {
          countBytes(res, chunk.length);
          if (size >= declaredLength) {
            // With a Content-Length the client is done at the last byte: hold it until the entry is published.
            lastChunk = lastChunk ? Buffer.concat([lastChunk, chunk]) : chunk;
          } else if (!res.write(chunk) && !pausedByClient) {
            pausedByClient = true;
            res.once('drain', () => {
              pausedByClient = false;
              flow();
            });
            flow();
          }
        }
        if (tooLarge) return;
        if (size > maxObject) {
          // Over the object limit: keep relaying, stop storing.
          tooLarge = true;
          writer?.abort();
          writer = null;
          chunks = null;
          if (pausedByFile) {
            pausedByFile = false;
            flow();
          }
          return;
        }
        if (chunks) {
          if (size <= this.memoryShare) chunks.push(chunk);
          else chunks = null;
        }
        if (writer && !writer.write(chunk) && !pausedByFile) {
          pausedByFile = true;
          writer.onDrain(() => {
            pausedByFile = false;
            flow();
          });
          flow();
        }
        if (!writer && !chunks) {
          // Too big for memory and no disk: nothing can hold it.
          tooLarge = true;
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
          if (res && !clientGone) res.end(lastChunk ?? undefined);
          resolve();
        };
        if (tooLarge) {
          writer?.abort();
          this.emit('not-stored', plan.href, { key: s.key, reason: 'too-large', status: s.status, size });
          if (plan.replacing) this.drop(plan.replacing, 'invalidated', 'replaced by a response too large to store');
          return endClient();
        }
        // The entry is published before the client's response ends: a client that got the
        // whole response and asks again gets a hit. Publishing is a rename and a small write.
        const body = chunks ? Buffer.concat(chunks, size) : null;
        const commit = this.commit(writer, body, size, plan, s);
        this.track(commit);
        commit.then(endClient, endClient);
      });
    });
  }

  private async commit(
    writer: BodyWriter | null,
    body: Buffer | null,
    size: number,
    plan: Plan,
    s: StoreSpec,
  ): Promise<void> {
    const storedAt = Date.now();
    const hash = hashKey(s.key);
    // A chunked origin response is answered from the cache with its now known length.
    if (rawHeader(s.stored, 'content-length') === undefined && !responseHasNoBody('GET', s.status)) s.stored.push('Content-Length', String(size));
    const record: IndexRecord = {
      key: s.key,
      hash,
      url: plan.href,
      status: s.status,
      size,
      digest: '',
      storedAt,
      freshUntil: freshUntil(s.policy),
      hits: 0,
      contentType: s.contentType,
      vary: s.vary,
    };
    const statusMessage = s.statusMessage;
    let onDisk = false;
    if (writer && this.disk) {
      try {
        record.digest = await writer.finish();
        const meta: EntryMeta = { ...record, v: 1, statusMessage, raw: s.stored, policy: s.policy.toObject() };
        await this.disk.commit(writer, meta, size > this.memoryShare);
        onDisk = true;
      } catch (err) {
        this.warnDisk(err);
      }
    }
    if (!onDisk && !body) {
      this.emit('not-stored', plan.href, { key: s.key, reason: 'disk-error', status: s.status, size });
      return;
    }
    if (!record.digest && body) record.digest = bodyDigestOf(body);
    const entry: Entry = {
      ...record,
      meta: this.loadedMeta(s.policy, statusMessage, s.stored, s.requestHeaders),
      body: body && (!onDisk || size <= this.memoryShare) ? body : null,
      onDisk,
    };
    if (this.closed) return;
    this.insert(entry);
    if (!this.index.has(entry.key)) {
      if (onDisk && this.disk) this.track(this.disk.remove(hash));
      this.emit('not-stored', plan.href, { key: s.key, reason: 'no-capacity', status: s.status, size });
      return;
    }
    if (plan.replacing) this.emit('revalidated', plan.href, { key: s.key, reason: 'replaced', status: s.status, size });
    else if (plan.prefetch) this.emit('prefetched', plan.href, { key: s.key, status: s.status, size });
    this.emit('stored', plan.href, { key: s.key, status: s.status, size });
    if (this.config.prefetchLinks > 0 && !plan.prefetch && /^text\/html\b/i.test(s.contentType ?? '')) this.queuePrefetch(entry);
  }

  /** Answers from a stored entry: from memory, or streamed from its (checked) file. Client conditionals get a 304. */
  private async serveStored(ex: Exchange, entry: Entry, cacheStatus: string, countHit = true): Promise<void> {
    const meta = entry.meta!;
    if (countHit) this.hits++;
    entry.hits++;
    if (this.deps.events.active) this.emit('hit', entry.url, { key: entry.key, status: entry.status, size: entry.size });
    if (this.clientHasCurrentCopy(ex, entry, meta)) return this.serveNotModified(ex, meta, cacheStatus);
    if (!entry.body && responseHasNoBody(ex.method, entry.status)) {
      // HEAD (or a bodiless status): the headers are all there is to send; no need to read the file.
      ex.cacheOutcome = cacheStatus;
      ex.res.writeHead(entry.status, meta.statusMessage || undefined, this.hitHeaders(ex, meta, cacheStatus));
      ex.res.end();
      return;
    }
    const range = this.requestedRange(ex, entry, meta);
    if (range === 'unsatisfiable') {
      ex.cacheOutcome = cacheStatus;
      ex.res.writeHead(416, this.partialHeaders(ex, meta, cacheStatus, `bytes */${entry.size}`, 0));
      ex.res.end();
      return;
    }
    let body: Buffer | null;
    try {
      body = await this.memoryBody(entry);
    } catch (err) {
      return this.recoverCorrupt(ex, entry, err);
    }
    if (body && range) {
      ex.cacheOutcome = cacheStatus;
      const part = body.subarray(range.start, range.end + 1);
      ex.res.writeHead(206, this.partialHeaders(ex, meta, cacheStatus, `bytes ${range.start}-${range.end}/${entry.size}`, part.length));
      countBytes(ex.res, part.length);
      ex.res.end(part);
      return;
    }
    if (body) {
      this.serveBody(ex, entry, body, cacheStatus, true);
      return;
    }
    let handle;
    try {
      handle = await this.disk!.openVerified(entry.hash, entry.digest, entry.size);
    } catch (err) {
      return this.recoverCorrupt(ex, entry, err);
    }
    const { res } = ex;
    if (range) {
      res.writeHead(206, this.partialHeaders(ex, meta, cacheStatus, `bytes ${range.start}-${range.end}/${entry.size}`, range.end - range.start + 1));
    } else {
      res.writeHead(entry.status, meta.statusMessage || undefined, this.hitHeaders(ex, meta, cacheStatus));
    }
    ex.cacheOutcome = cacheStatus;
    if (ex.method === 'HEAD' || responseHasNoBody(ex.method, entry.status)) {
      await handle.close();
      res.end();
      return;
    }
    // 1 MiB reads: a quarter of the thread-pool round trips and stream callbacks of the default 64 KiB.
    const stream = handle.createReadStream({ start: range ? range.start : 0, end: range?.end, highWaterMark: DISK_READ_CHUNK });
    await new Promise<void>((resolve) => {
      stream.on('data', (chunk) => countBytes(res, chunk.length));
      stream.once('error', (err) => {
        res.destroy(err);
        resolve();
      });
      res.once('close', () => {
        stream.destroy();
        resolve();
      });
      stream.pipe(res);
    });
  }

  /**
   * A single byte range of a stored 200 (RFC 9110 §14): null means "send it all" (no Range, a
   * multi-range or malformed header, or an If-Range that no longer matches).
   */
  private requestedRange(ex: Exchange, entry: Entry, meta: LoadedMeta): { start: number; end: number } | 'unsatisfiable' | null {
    const header = headerValue(ex.req.headers, 'range');
    if (header === undefined || ex.method !== 'GET' || entry.status !== 200) return null;
    const ifRange = headerValue(ex.req.headers, 'if-range');
    if (ifRange !== undefined) {
      const etag = rawHeader(meta.raw, 'etag');
      const strongMatch = etag !== undefined && !etag.startsWith('W/') && ifRange.trim() === etag;
      if (!strongMatch && ifRange.trim() !== rawHeader(meta.raw, 'last-modified')) return null;
    }
    const m = /^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$/i.exec(header);
    if (!m || (m[1] === '' && m[2] === '')) return null;
    const size = entry.size;
    let start: number;
    let end: number;
    if (m[1] === '') {
      const suffix = Number(m[2]);
      if (suffix === 0) return 'unsatisfiable';
      start = Math.max(0, size - suffix);
      end = size - 1;
    } else {
      start = Number(m[1]);
      end = m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1);
      if (Number(m[2]) < start && m[2] !== '') return null;
    }
    if (start >= size) return 'unsatisfiable';
    return { start, end };
  }

  private partialHeaders(ex: Exchange, meta: LoadedMeta, cacheStatus: string, contentRange: string, length: number): string[] {
    const headers = this.hitHeaders(ex, meta, cacheStatus);
    const out: string[] = [];
    for (let i = 0; i < headers.length; i += 2) if (headers[i].toLowerCase() !== 'content-length') out.push(headers[i], headers[i + 1]);
    out.push('Content-Range', contentRange, 'Content-Length', String(length));
    return out;
  }

  private async recoverCorrupt(ex: Exchange, entry: Entry, err: unknown): Promise<void> {
    this.drop(entry, 'corrupt', err instanceof CorruptEntryError ? err.reason : String(err));
    return this.miss(ex, entry.key, 'miss');
  }

  private hitHeaders(ex: Exchange, meta: LoadedMeta, cacheStatus: string): string[] {
    const headers = storedWithAge(meta, cacheStatus);
    return ex.rewriteHeaders ? ex.rewriteHeaders(headers) : headers;
  }

  private countHit(entry: Entry): void {
    this.hits++;
    entry.hits++;
    if (this.deps.events.active) this.emit('hit', entry.url, { key: entry.key, status: entry.status, size: entry.size });
  }

  /** The synchronous tail of every in-memory answer. */
  private serveBody(ex: Exchange, entry: Entry, body: Buffer, cacheStatus: string, counted: boolean): void {
    const meta = entry.meta!;
    if (!counted) this.countHit(entry);
    ex.cacheOutcome = cacheStatus;
    const res = ex.res;
    res.writeHead(entry.status, meta.statusMessage || undefined, this.hitHeaders(ex, meta, cacheStatus));
    if (ex.method === 'HEAD' || responseHasNoBody(ex.method, entry.status)) {
      res.end();
      return;
    }
    countBytes(res, body.length);
    res.end(body);
  }

  /** RFC 9110 §13.1: If-None-Match wins over If-Modified-Since. */
  private clientHasCurrentCopy(ex: Exchange, entry: Entry, meta: LoadedMeta): boolean {
    if (entry.status !== 200) return false;
    const inm = headerValue(ex.req.headers, 'if-none-match');
    if (inm !== undefined) return etagMatches(inm, rawHeader(meta.raw, 'etag'));
    const ims = headerValue(ex.req.headers, 'if-modified-since');
    const lm = rawHeader(meta.raw, 'last-modified');
    if (ims === undefined || lm === undefined) return false;
    const since = Date.parse(ims);
    const modified = Date.parse(lm);
    return Number.isFinite(since) && Number.isFinite(modified) && modified <= since;
  }

  private serveNotModified(ex: Exchange, meta: LoadedMeta, cacheStatus: string): void {
    const headers = this.hitHeaders(ex, meta, cacheStatus);
    const out: string[] = [];
    for (let i = 0; i < headers.length; i += 2) {
      const lower = headers[i].toLowerCase();
      if (lower === 'content-length' || lower === 'content-type' || lower === 'content-encoding' || lower === 'content-range') continue;
      out.push(headers[i], headers[i + 1]);
    }
    ex.cacheOutcome = cacheStatus;
    ex.res.writeHead(304, out);
    ex.res.end();
  }

  /** Asks the origin whether a stored entry is still good, then answers the client from the outcome. */
  private async revalidateAndServe(ex: Exchange, entry: Entry, fwd: string, fill: Fill | null = null): Promise<void> {
    const meta = entry.meta!;
    const href = ex.url.href;
    const policyReq = { url: href, method: 'GET', headers: this.policyHeaders(ex.url, ex.req.headers, entry.vary) };
    const conditional = meta.policy.revalidationHeaders({ url: href, method: 'GET', headers: { ...ex.forwardHeaders, host: ex.url.host } as CachePolicy.Headers });
    delete conditional.host;
    // A range is served from the refreshed entry; asking the origin for one would not refresh it.
    delete conditional.range;
    ex.cacheOutcome = `fwd=${fwd}`;
    let upstream: IncomingMessage;
    try {
      upstream = await this.deps.origin.fetch({ method: 'GET', url: ex.url, headers: conditional, ...this.abortUnlessAwaited(ex, fill) });
    } catch (err) {
      if (err instanceof ProxyError && err.status === 499) throw err;
      if (stillUsableOnError(meta.policy, policyReq)) {
        this.emit('served-stale', href, { key: entry.key, reason: 'stale-if-error', status: entry.status });
        return this.serveStored(ex, entry, `fwd=${fwd}; ttl=${ttlSeconds(entry)}; detail=stale-if-error`);
      }
      if (this.config.serveStaleIfOffline && !meta.mustRevalidate && err instanceof ProxyError && err.status >= 500) {
        this.emit('served-stale', href, { key: entry.key, reason: 'origin-unreachable', status: entry.status });
        return this.serveStored(ex, entry, `fwd=${fwd}; ttl=${ttlSeconds(entry)}; detail=origin-unreachable`);
      }
      throw err;
    }
    const status = upstream.statusCode ?? 502;
    if (status === 304) {
      upstream.resume();
      if (this.refreshFrom304(entry, policyReq, upstream)) {
        return this.serveStored(ex, entry, `fwd=${fwd}; fwd-status=304; ttl=${ttlSeconds(entry)}`);
      }
      // The 304 is about the client's own copy, not ours: hand it on.
      ex.cacheOutcome = `fwd=${fwd}; fwd-status=304`;
      return relayResponse(ex, upstream, ['Cache-Status', `caching-proxy; fwd=${fwd}; fwd-status=304`]);
    }
    if (status >= 500 && stillUsableOnError(meta.policy, policyReq, { status, headers: headerObject(upstream.rawHeaders) })) {
      upstream.resume();
      this.emit('served-stale', href, { key: entry.key, reason: 'stale-if-error', status: entry.status });
      return this.serveStored(ex, entry, `fwd=${fwd}; fwd-status=${status}; ttl=${ttlSeconds(entry)}; detail=stale-if-error`);
    }
    const plan: Plan = { url: ex.url, href, fwd, requestHeaders: ex.req.headers, replacing: entry, prefetch: false, fill };
    return this.storeOrRelay(ex, upstream, plan, null);
  }

  /** Applies a 304 to a stored entry (RFC 9111 §4.3.4); false if the 304 does not select it. */
  private refreshFrom304(entry: Entry, policyReq: CachePolicy.Request, upstream: IncomingMessage): boolean {
    const meta = entry.meta!;
    const { policy, modified, matches } = meta.policy.revalidatedPolicy(policyReq, { status: 304, headers: headerObject(upstream.rawHeaders) }) as CachePolicy.RevalidationPolicy & { matches?: boolean };
    if (modified || matches === false) return false;
    entry.meta = this.loadedMeta(policy, meta.statusMessage, mergeNotModified(meta.raw, upstream.rawHeaders), meta.requestHeaders);
    entry.freshUntil = freshUntil(policy);
    entry.storedAt = Date.now();
    if (entry.onDisk && this.disk) {
      const full: EntryMeta = { ...toRecord(entry), v: 1, statusMessage: meta.statusMessage, raw: entry.meta.raw, policy: policy.toObject() };
      this.track(this.disk.writeMeta(full).catch((err) => this.warnDisk(err)));
    }
    this.emit('revalidated', entry.url, { key: entry.key, reason: '304', status: entry.status, size: entry.size });
    return true;
  }

  /** Revalidates an entry without a client waiting (stale-while-revalidate, the UI's "revalidate"). */
  private backgroundRevalidate(entry: Entry): Promise<void> {
    const running = this.fills.get(entry.key);
    if (running) return running.promise;
    return this.startFill(entry.key, (fill) =>
      this.refresh(entry, fill).catch((err: unknown) => {
        this.deps.events.emit({ type: 'notice', level: 'debug', message: `cache: revalidating ${entry.url} failed: ${(err as Error).message}` });
      }),
    ).promise;
  }

  private async refresh(entry: Entry, fill: Fill): Promise<void> {
    const meta = (await this.ensureMeta(entry))!;
    if (!meta) return;
    const url = new URL(entry.url);
    const policyReq = { url: entry.url, method: 'GET', headers: { ...meta.requestHeaders } };
    const conditional = meta.policy.revalidationHeaders({ url: entry.url, method: 'GET', headers: { ...meta.requestHeaders, accept: '*/*', via: `1.1 ${VIA_NAME}` } });
    delete conditional.host;
    const upstream = await this.deps.origin.fetch({ method: 'GET', url, headers: conditional, signal: this.shutdown.signal });
    const status = upstream.statusCode ?? 502;
    if (status === 304) {
      upstream.resume();
      if (!this.refreshFrom304(entry, policyReq, upstream)) this.drop(entry, 'invalidated', '304 for another representation');
      return;
    }
    if (status >= 500) {
      upstream.resume();
      return;
    }
    const plan: Plan = { url, href: entry.url, fwd: 'stale', requestHeaders: meta.requestHeaders, replacing: entry, prefetch: false, fill };
    await this.storeOrRelay(null, upstream, plan, null);
  }

  /** Unsafe methods go to the origin; a success invalidates the URL and its same-origin Location / Content-Location. */
  private async forwardUncached(ex: Exchange): Promise<void> {
    ex.cacheOutcome = 'fwd=method';
    const upstream = await fetchAsIs(this.deps.origin, ex);
    const status = upstream.statusCode ?? 502;
    if (UNSAFE_METHODS.has(ex.method) && status >= 200 && status < 400) {
      this.invalidateUrl(ex.url.href, `${ex.method} ${status}`);
      for (const name of ['location', 'content-location']) {
        const value = rawHeader(upstream.rawHeaders, name);
        if (!value) continue;
        try {
          const target = new URL(value, ex.url);
          if (target.origin === ex.url.origin) this.invalidateUrl(target.href, `${name} of ${ex.method} ${ex.url.href}`);
        } catch {
          // Not a URL: nothing to invalidate.
        }
      }
    }
    return relayResponse(ex, upstream, ['Cache-Status', 'caching-proxy; fwd=method']);
  }

  private invalidateUrl(href: string, reason: string): void {
    const keys = this.keysByUrl.get(href);
    if (!keys) return;
    for (const key of [...keys]) {
      const entry = this.index.peek(key);
      if (entry) this.drop(entry, 'invalidated', reason);
    }
  }

  private async bypass(ex: Exchange, cacheStatus: string): Promise<void> {
    ex.cacheOutcome = cacheStatus;
    const upstream = await fetchAsIs(this.deps.origin, ex);
    return relayResponse(ex, upstream, ['Cache-Status', `caching-proxy; ${cacheStatus}`]);
  }

  private gatewayTimeout(ex: Exchange, cacheStatus: string, message: string): never {
    ex.cacheOutcome = cacheStatus;
    throw new ProxyError(504, message, 'CACHE_MISS');
  }

  /** The `offline` policy: only what is stored, fresh or not; the origin is never contacted. */
  private async handleOffline(ex: Exchange): Promise<void> {
    if (ex.method !== 'GET' && ex.method !== 'HEAD') {
      return this.gatewayTimeout(ex, 'detail=offline', `offline: the cache policy is "offline", so ${ex.method} requests cannot reach ${ex.url.host}`);
    }
    const entry = this.index.get(this.keyFor(ex.url.href, ex.req.headers));
    if (entry && (await this.ensureMeta(entry))) {
      if (Date.now() >= entry.freshUntil) this.emit('served-stale', entry.url, { key: entry.key, reason: 'offline', status: entry.status });
      return this.serveStored(ex, entry, `hit; ttl=${ttlSeconds(entry)}; detail=offline`);
    }
    this.misses++;
    this.emit('miss', ex.url.href);
    return this.gatewayTimeout(ex, 'detail=offline', `offline: ${ex.url.href} is not in the cache (the cache policy is "offline")`);
  }

  // ---------------------------------------------------------------- prefetch

  private queuePrefetch(entry: Entry): void {
    if (!entry.body || entry.size > PREFETCH_MAX_HTML) return;
    let links: string[];
    try {
      links = extractSameOriginLinks(entry.body.toString('utf8'), entry.url, this.config.prefetchLinks);
    } catch {
      return;
    }
    for (const link of links) {
      if (this.prefetchQueue.length >= PREFETCH_QUEUE_MAX) break;
      if (this.keysByUrl.has(link) || this.fills.has('GET ' + link) || this.prefetchQueue.includes(link)) continue;
      this.prefetchQueue.push(link);
    }
    this.pumpPrefetch();
  }

  private pumpPrefetch(): void {
    while (!this.closed && this.prefetchRunning < PREFETCH_CONCURRENCY && this.prefetchQueue.length) {
      const link = this.prefetchQueue.shift()!;
      const key = 'GET ' + link;
      if (this.keysByUrl.has(link) || this.fills.has(key)) continue;
      this.prefetchRunning++;
      const fill = this.startFill(key, (f) =>
        this.fetchAndAnswer(null, 'miss', null, f, new URL(link)).catch((err: unknown) => {
          this.emit('not-stored', link, { reason: `prefetch failed: ${(err as Error).message}` });
        }),
      );
      void fill.promise.then(() => {
        this.prefetchRunning--;
        this.pumpPrefetch();
      });
    }
  }

  // ---------------------------------------------------------------- operations for the UI

  list(): CacheEntrySummary[] {
    const out: CacheEntrySummary[] = [];
    for (const entry of this.index.values()) out.push(this.summary(entry));
    return out;
  }

  private summary(entry: Entry): CacheEntrySummary {
    const ttl = ttlSeconds(entry);
    const headers: Record<string, string> = {};
    if (entry.meta) {
      for (const name of ['etag', 'last-modified', 'cache-control', 'expires', 'vary', 'content-type', 'content-encoding']) {
        const v = rawHeader(entry.meta.raw, name);
        if (v !== undefined) headers[name] = v;
      }
    }
    return {
      key: entry.key,
      url: entry.url,
      method: 'GET',
      status: entry.status,
      size: entry.size,
      storedAt: entry.storedAt,
      ttl,
      fresh: Date.now() < entry.freshUntil,
      hits: entry.hits,
      contentType: entry.contentType,
      headers,
    };
  }

  async read(key: string): Promise<StoredResponse | null> {
    const entry = this.index.peek(key);
    if (!entry) return null;
    const meta = await this.ensureMeta(entry);
    if (!meta) return null;
    let body: Buffer;
    try {
      body = entry.body ?? (await this.disk!.readBody(entry.hash, entry.digest, entry.size));
    } catch (err) {
      this.drop(entry, 'corrupt', err instanceof CorruptEntryError ? err.reason : String(err));
      return null;
    }
    const headers: Record<string, string | string[]> = {};
    for (let i = 0; i < meta.raw.length; i += 2) {
      const name = meta.raw[i];
      const prev = headers[name];
      headers[name] = prev === undefined ? meta.raw[i + 1] : ([] as string[]).concat(prev, meta.raw[i + 1]);
    }
    return { summary: this.summary(entry), statusMessage: meta.statusMessage, headers, body };
  }

  async purge(key: string): Promise<boolean> {
    const entry = this.index.peek(key);
    if (!entry) return false;
    this.drop(entry, 'purged', 'purged');
    await this.flushWrites();
    return true;
  }

  async purgeHost(host: string): Promise<number> {
    const wanted = host.toLowerCase();
    let n = 0;
    for (const entry of [...this.index.values()]) {
      const u = new URL(entry.url);
      if (u.host === wanted || u.hostname === wanted) {
        this.drop(entry, 'purged', `host ${host}`);
        n++;
      }
    }
    await this.flushWrites();
    return n;
  }

  async purgeAll(): Promise<number> {
    const n = this.index.size;
    // clear() disposes every entry: its files are removed.
    this.index.clear();
    this.hot?.clear();
    this.keysByUrl.clear();
    this.varyByUrl.clear();
    if (n) this.emit('purged', '*', { reason: `all ${n} entries` });
    await this.flushWrites();
    return n;
  }

  async revalidate(key: string): Promise<CacheEntrySummary | null> {
    const entry = this.index.peek(key);
    if (!entry) return null;
    await this.backgroundRevalidate(entry);
    const now = this.index.peek(key);
    return now ? this.summary(now) : null;
  }

  stats(): CacheStats {
    return {
      entries: this.index.size,
      bytes: this.index.calculatedSize ?? 0,
      memoryBytes: this.hot ? (this.hot.calculatedSize ?? 0) : (this.index.calculatedSize ?? 0),
      hits: this.hits,
      misses: this.misses,
    };
  }

  async updateConfig(config: CacheConfig): Promise<void> {
    // Under new settings (policy, limits, excluded types) what could not be stored may be storable.
    this.uncacheable.clear();
    const entries = this.oldestFirst();
    if (config.dir !== this.config.dir) {
      await this.flushWrites();
      if (this.disk) await this.disk.saveIndex(entries.filter((e) => e.onDisk).map(toRecord)).catch(() => {});
      this.diskWarned = false;
      this.config = config;
      this.varyByUrl.clear();
      this.keysByUrl.clear();
      await this.openDisk(config.dir);
      return;
    }
    // Dropping the old LRUs without clear(): their entries live on in the new ones.
    this.varyByUrl.clear();
    this.keysByUrl.clear();
    this.configureLimits(config, entries);
  }

  private oldestFirst(): Entry[] {
    const out: Entry[] = [];
    for (const e of this.index.rvalues()) if (e) out.push(e);
    return out;
  }

  private async flushWrites(): Promise<void> {
    while (this.pendingWrites.size) await Promise.all([...this.pendingWrites]);
  }

  async close(): Promise<void> {
    this.shutdown.abort();
    this.prefetchQueue = [];
    await Promise.all([...this.fills.values()].map((f) => f.promise.catch(() => {})));
    await this.flushWrites();
    this.closed = true;
    if (this.disk) {
      const records = this.oldestFirst().filter((e) => e.onDisk).map(toRecord);
      await this.disk.saveIndex(records).catch((err) => this.warnDisk(err));
    }
  }
}

/** Key of one variant: method + URL + the values of the request headers the response varies on. */
function variantKey(href: string, vary: string[], headers: IncomingHttpHeaders): string {
  let key = 'GET ' + href;
  for (const name of vary) key += `\n${name}: ${headerValue(headers, name) ?? ''}`;
  return key;
}

function freshUntil(policy: CachePolicy): number {
  return Date.now() + (policy.maxAge() - policy.age()) * 1000;
}

function ttlSeconds(entry: Entry): number {
  return Math.round((entry.freshUntil - Date.now()) / 1000);
}

/** What the policy was built from: host + the Vary-named request headers. */
function requestHeadersOf(obj: CachePolicy.CachePolicyObject): Record<string, string> {
  const out: Record<string, string> = {};
  if (obj.reqh) for (const k in obj.reqh) if (k !== 'cache-control' && k !== 'pragma' && k !== 'authorization') out[k] = String(obj.reqh[k]);
  if (obj.h) out.host = obj.h;
  return out;
}

/** stale-if-error (RFC 5861) as http-cache-semantics judges it: the same policy back means "use the stored one". */
function stillUsableOnError(policy: CachePolicy, req: CachePolicy.Request, response?: CachePolicy.Response): boolean {
  try {
    const result = policy.revalidatedPolicy(req, response);
    return result.policy === policy && !result.modified;
  } catch {
    return false;
  }
}
