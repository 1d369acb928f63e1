import type { IncomingHttpHeaders } from 'node:http';
import { LRUCache } from 'lru-cache';
import type { EntryMeta } from './entryMeta';
import { plainKey, variantKey } from './rules';
import { hashKey } from './store/entryStore';

/** A URL whose responses vary: the request fields they vary on, and the keys of its stored variants. */
export interface VaryMarker {
  vary: string[];
  variants: string[];
}
export type KnownVary = VaryMarker | { vary: null };
interface VaryMemory {
  get(href: string): KnownVary | undefined;
  set(href: string, known: KnownVary): unknown;
  delete(href: string): unknown;
  clear(): void;
}
/** What is known of a URL whose responses do not vary (one object for all of them). */
export const NOT_VARYING: KnownVary = Object.freeze({ vary: null });
/** Vary markers kept in memory with a disk tier. */
const KNOWN_VARY_MAX = 50_000;

/** A record as the disk tier gives it back. */
export interface FoundRecord {
  meta: EntryMeta;
  body: Buffer | null;
}

/** What the markers need of the store's disk tier. */
export interface MarkerRecords {
  /** Whether there is a disk tier (markers are records only there). */
  hasDisk(): boolean;
  /** The record under a plain key (a marker, or the URL's own entry), or null. */
  read(key: string): Promise<FoundRecord | null>;
  /** The record under a URL's plain key was its entry, not a marker: the lookup that follows wants it. */
  entryRead(key: string, found: FoundRecord): void;
  /** Writes a marker record. */
  write(meta: EntryMeta): Promise<void>;
}

export function isMarker(meta: EntryMeta): boolean {
  return meta.marker === true;
}

/** The marker a marker record holds. */
export function markerFrom(meta: EntryMeta): VaryMarker {
  return { vary: meta.vary ?? [], variants: meta.variants ?? [] };
}

/**
 * What is known of URLs' Vary: every stored URL without a disk tier; with one, the URLs in use
 * (at most KNOWN_VARY_MAX), the rest read from their marker records (a record under the URL's
 * plain key naming the fields and the variants' keys) when asked.
 */
export class VaryMarkers {
  private known: VaryMemory = new Map();
  /** Marker updates in order, per URL (two variants stored at once must both be listed). */
  private readonly writes = new Map<string, Promise<void>>();

  constructor(private readonly records: MarkerRecords) {}

  /** Empties what is known; with a disk tier it is bounded from then on. */
  reset(diskMode: boolean): void {
    this.known = diskMode ? new LRUCache<string, KnownVary>({ max: KNOWN_VARY_MAX }) : new Map();
  }

  get(href: string): KnownVary | undefined {
    return this.known.get(href);
  }

  set(href: string, known: KnownVary): void {
    this.known.set(href, known);
  }

  delete(href: string): void {
    this.known.delete(href);
  }

  clear(): void {
    this.known.clear();
  }

  /** The key for a request from what is in memory (the synchronous fast paths); resolveKey asks the disk too. */
  keyFor(href: string, headers: IncomingHttpHeaders): string {
    const marker = this.known.get(href);
    return marker?.vary ? variantKey(href, marker.vary, headers) : plainKey(href);
  }

  /** The key for a request: the variant's, if the URL's responses vary (its marker read from disk if need be). */
  async resolveKey(href: string, headers: IncomingHttpHeaders): Promise<string> {
    const marker = await this.markerOf(href);
    return marker ? variantKey(href, marker.vary, headers) : plainKey(href);
  }

  /** The URL's marker, or null if its responses do not vary (read from disk if not known). */
  async markerOf(href: string): Promise<VaryMarker | null> {
    const known = this.known.get(href);
    if (known) return known.vary ? (known as VaryMarker) : null;
    if (!this.records.hasDisk()) return null;
    const key = plainKey(href);
    const found = await this.records.read(key);
    const marker = found && isMarker(found.meta) ? markerFrom(found.meta) : null;
    this.known.set(href, marker ?? NOT_VARYING);
    if (found && !marker) this.records.entryRead(key, found);
    return marker;
  }

  /** Records a variant in its URL's marker, one update at a time per URL. */
  addVariant(href: string, vary: string[], key: string): Promise<void> {
    const previous = this.writes.get(href) ?? Promise.resolve();
    const run = previous.then(async () => {
      const current = await this.markerOf(href);
      const variants = current ? current.variants.filter((k) => k !== key) : [];
      variants.push(key);
      const marker: VaryMarker = { vary, variants };
      const pk = plainKey(href);
      const meta = { v: 1, key: pk, hash: hashKey(pk), url: href, status: 0, size: 0, digest: '', storedAt: Date.now(), freshUntil: 0, hits: 0, vary, variants, marker: true, statusMessage: '', raw: [], policy: {} } as unknown as EntryMeta;
      await this.records.write(meta);
      this.known.set(href, marker);
    });
    const settled = run.catch(() => {});
    this.writes.set(href, settled);
    void settled.then(() => {
      if (this.writes.get(href) === settled) this.writes.delete(href);
    });
    return run;
  }
}
