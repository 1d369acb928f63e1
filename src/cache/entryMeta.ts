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

/** The metadata file beside each body: everything needed to answer from the entry. */
export interface EntryMeta extends IndexRecord {
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

export class CorruptEntryError extends Error {
  constructor(readonly reason: string) {
    super(reason);
  }
}
