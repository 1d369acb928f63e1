import type CachePolicy from 'http-cache-semantics';

/** What list() and the LRU need of an entry without touching its files. */
export interface IndexRecord {
  key: string;
  /** sha256 of the key: the entry's file names. */
  hash: string;
  url: string;
  status: number;
  size: number;
  /** The body's digest (see digest.ts). */
  digest: string;
  storedAt: number;
  /** Epoch ms until which the entry is fresh (from the policy at store / revalidation time). */
  freshUntil: number;
  hits: number;
  contentType?: string;
  /** Request header names of the response's Vary, lower-cased; null without Vary. */
  vary: string[] | null;
}

/**
 * The JSON form of an entry's metadata (v1): every record written before the compact form, vary
 * markers, and the old layout's .meta files beside each body. Still read, and still written for
 * markers and for metadata the compact form cannot hold.
 */
export interface JsonEntryMeta extends IndexRecord {
  v: 1;
  /** Written before digests had a kind: the body's SHA-256, read as `digest`. */
  sha256?: string;
  statusMessage: string;
  /** Response headers as prepared for hits (no Age, Date, Cache-Status). */
  raw: string[];
  policy: CachePolicy.CachePolicyObject;
  /** A vary marker (see store.ts), not a response: the URL's Vary fields and the keys of its stored variants. */
  marker?: boolean;
  variants?: string[];
}

/**
 * The compact form of a response's metadata (v2, store/compactMeta.ts): what a fresh hit needs
 * worked out when it was stored (so a load builds no policy), the stored fields as one block of
 * lines, the policy as its JSON text, parsed only when something asks for it (LoadedMeta).
 */
export interface CompactEntryMeta extends IndexRecord {
  v: 2;
  statusMessage: string;
  /** The stored fields as sent on a hit, `Name: value\r\n` each (see headBlock). */
  head: string;
  /** JSON of http-cache-semantics' toObject(). */
  readonly policyText: string;
  /** The policy as the plain form stores it (store/plainMeta.ts), when read from such a record: policyText inflates it. */
  readonly packedPolicy?: string;
  /** See LoadedMeta. */
  fastOk: boolean;
  mustRevalidate: boolean;
  neverStale: boolean;
  ageZeroAt: number;
  marker?: undefined;
  variants?: undefined;
}

/** An entry's metadata as the disk tier stores it, in either form. */
export type EntryMeta = JsonEntryMeta | CompactEntryMeta;

export class CorruptEntryError extends Error {
  constructor(readonly reason: string) {
    super(reason);
  }
}
