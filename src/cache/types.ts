import type { CacheConfig } from '../core/config';
import type { RuleSet } from '../rules/ruleSet';
import type { EventBus } from '../core/events';
import type { Origin, RequestHandler } from '../core/exchange';
import type { QuickLane } from '../core/quick/lane';

/** What the UI shows of one stored response. Plain JSON: it crosses the IPC boundary. */
export interface CacheEntrySummary {
  key: string;
  url: string;
  method: string;
  status: number;
  /** Body size in bytes. */
  size: number;
  /** Epoch ms when the response was stored (or last revalidated). */
  storedAt: number;
  /** Seconds of freshness left; negative when stale. */
  ttl: number;
  fresh: boolean;
  hits: number;
  contentType?: string;
  /** A few key response headers for tooltips: etag, last-modified, cache-control, vary, ... */
  headers: Record<string, string>;
  /** The rule or preset part (src/rules/) the entry was stored under, e.g. "npm:tarball". */
  rule?: string;
}

export interface StoredResponse {
  summary: CacheEntrySummary;
  statusMessage: string;
  /** Stored response headers, as received from the origin. */
  headers: Record<string, string | string[]>;
  body: Buffer;
  /** The request headers the response was stored for: host and the fields its Vary names. */
  requestHeaders?: Record<string, string>;
}

/** A complete response handed to the cache whole (a HAR import) instead of streamed from an origin. */
export interface ResponseToStore {
  url: string;
  /** The request's header fields, lower-case names: the ones the response's Vary names pick its variant. */
  requestHeaders: Record<string, string>;
  status: number;
  statusMessage: string;
  /** [name, value, ...] as the origin sent them (framing fields are recomputed). */
  rawHeaders: string[];
  body: Buffer;
}

export type StoreOutcome = { stored: true; key: string } | { stored: false; reason: string };

export interface CacheStats {
  entries: number;
  bytes: number;
  memoryBytes: number;
  hits: number;
  misses: number;
}

/** The cache as the rest of the program sees it: a request handler plus the operations the UI needs. */
export interface HttpCache {
  readonly handler: RequestHandler;
  /** The server's quick lane (core/quick/): fresh in-memory hits, and plain requests for URLs whose responses are not stored. */
  readonly quick: QuickLane;
  /** Stored entries, most recently used first; at most `limit` (default 10,000: what a view can show). */
  list(limit?: number): Promise<CacheEntrySummary[]>;
  read(key: string): Promise<StoredResponse | null>;
  /** Stores a complete response by the same rules as one from the origin (as a GET of its URL), or says why not. */
  storeResponse(response: ResponseToStore): Promise<StoreOutcome>;
  purge(key: string): Promise<boolean>;
  purgeHost(host: string): Promise<number>;
  purgeAll(): Promise<number>;
  /** Revalidates one entry with the origin now; resolves with its new summary, or null if it is gone. */
  revalidate(key: string): Promise<CacheEntrySummary | null>;
  stats(): CacheStats;
  /** Applies new settings without losing what is stored (a new dir moves to that dir's store). */
  updateConfig(config: CacheConfig): Promise<void>;
  /** The rules and presets in force (src/rules/); none until set. */
  setRules(rules: RuleSet): void;
  /** Flushes pending writes and releases files. */
  close(): Promise<void>;
}

export interface CacheDeps {
  events: EventBus;
  origin: Origin;
}
