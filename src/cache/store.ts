import type { FileHandle } from 'node:fs/promises';
import type { IncomingHttpHeaders } from 'node:http';
import type { LRUCache } from 'lru-cache';
import type { CacheAction } from '../core/events';
import { bodyDigestOf } from './digest';
import { CorruptEntryError, type EntryMeta, type IndexRecord } from './entryMeta';
import { loadMeta, type Entry, type LoadedMeta } from './entry';
import { compactLoaded, entryFromStored, storedMeta, summaryEntry } from './storedEntry';
import type { CacheReport } from './report';
import { RecentReads } from './recentReads';
import { plainKey, variantKey } from './rules';
import { EntryStore, hashKey } from './store/entryStore';
import { keptBody } from './store/records';
import type { StoreWriter } from './store/writer';
import { diskSizeLimit, diskWarning, freeDiskBytes, memoryTier, MiB, reportOpened, type StoreLimits } from './storeTiers';
import { isMarker, markerFrom, NOT_VARYING, VaryMarkers, type FoundRecord } from './varyMarkers';

export type { StoreLimits } from './storeTiers';
/** The UI's list shows at most this many entries, most recently used first. */
export const LIST_LIMIT = 10_000;

/** A response complete and ready to become an entry. */
export interface NewEntry {
  record: IndexRecord;
  statusMessage: string;
  raw: string[];
  policy: LoadedMeta['policy'];
  requestHeaders: Record<string, string>;
  /** The body in memory, if it was small enough to collect. */
  body: Buffer | null;
  /** Its writer, if there is a disk tier. */
  file: StoreWriter | null;
}

/**
 * The stored entries. With a disk tier, every entry lives in the disk store (store/entryStore.ts),
 * which alone knows them all (LRU order and size limit included); memory holds only the
 * entries in use (metadata, and bodies up to the memory share), least recently used out within
 * maxMemoryMB. A URL whose responses Vary has a marker record under its plain key naming the
 * fields and the variants. Without a disk tier, memory holds every entry (LRU by count and bytes).
 * Everything the cache stores, reads or removes goes through here.
 */
export class Store {
  private disk: EntryStore | null = null;
  private diskWarned = false;
  private limits: StoreLimits;
  /** Memory only: every entry. With a disk tier: the entries loaded in memory. */
  private index!: LRUCache<string, Entry>;
  /** Loaded entries by the first 16 hex digits of their hash: the disk store names evicted entries so. */
  private readonly byPrefix = new Map<string, Entry>();
  private share = 0;
  /** What is known of URLs' Vary (every stored URL in memory mode, the ones in use with a disk tier), and their marker records. */
  private readonly markers = new VaryMarkers({
    hasDisk: () => this.disk !== null,
    read: (key) => this.readRecord(key, hashKey(key)),
    entryRead: (key, found) => {
      if (!this.index.peek(key)) this.loaded(found.meta, found.body);
    },
    write: (meta) => {
      // The URL varies from now on: its plain-key response must not answer (see freshInMemory).
      this.forget(meta.key);
      return this.disk!.put(meta, Buffer.alloc(0), null);
    },
  });
  /** Entries the quick path read from disk lately: kept in memory from their second read. */
  private readonly recentReads = new RecentReads();
  /** Memory only: URL -> keys of its stored variants. */
  private readonly keysByUrl = new Map<string, Set<string>>();
  private readonly pendingWrites = new Set<Promise<unknown>>();
  private closed = false;

  constructor(
    limits: StoreLimits,
    private readonly report: CacheReport,
  ) {
    this.limits = limits;
    this.configure(limits, []);
  }

  /** Opens the disk tier (if any): reads its index, nothing of the entries. */
  async open(): Promise<void> {
    await this.openDisk(this.limits.dir);
  }

  /** Resolves once the disk tier's index is in (at once without one; also if it failed to load). */
  async whenLoaded(): Promise<void> {
    await this.disk?.ready.catch(() => {});
  }

  /** Bytes the store may hold. */
  get capacity(): number {
    const disk = Math.floor(this.limits.maxSizeMB * MiB);
    return this.disk !== null ? disk : Math.min(disk, Math.floor(this.limits.maxMemoryMB * MiB));
  }

  /** The largest body kept in memory. */
  get memoryShare(): number {
    return this.share;
  }

  get size(): number {
    return this.disk ? this.disk.count : this.index.size;
  }

  get bytes(): number {
    return this.disk ? this.disk.bytes : (this.index.calculatedSize ?? 0);
  }

  get memoryBytes(): number {
    return this.index.calculatedSize ?? 0;
  }

  // ---------------------------------------------------------------- finding entries

  /** The key for a request from what is in memory (the synchronous fast paths); resolveKey asks the disk too. */
  keyFor(href: string, headers: IncomingHttpHeaders): string {
    return this.markers.keyFor(href, headers);
  }

  /** The key for a request: the variant's, if the URL's responses vary (its marker read from disk if need be). */
  resolveKey(href: string, headers: IncomingHttpHeaders): Promise<string> {
    return this.markers.resolveKey(href, headers);
  }

  /** Some variant of the URL is stored. */
  hasUrl(href: string): boolean {
    // While the disk index loads, any URL may be stored (prefetch and the quick pass-through hold back).
    if (this.disk) return !this.disk.loaded || this.disk.has(hashKey(plainKey(href)));
    return this.keysByUrl.has(href);
  }

  /** The entry for a key with its metadata loaded, or undefined; `touch`: marked as used. */
  async find(key: string, touch = true): Promise<Entry | undefined> {
    const inMemory = touch ? this.index.get(key) : this.index.peek(key);
    if (inMemory) {
      if (touch) this.disk?.touchRef(inMemory);
      return inMemory;
    }
    if (!this.disk) return undefined;
    const hash = hashKey(key);
    const found = await this.readRecord(key, hash);
    if (!found || isMarker(found.meta)) return undefined;
    if (touch) this.disk.touch(hash);
    return this.index.peek(key) ?? this.loaded(found.meta, found.body);
  }

  /** An entry's record from disk; a damaged one is reported (and the disk store has removed it). */
  private async readRecord(key: string, hash: string): Promise<FoundRecord | null> {
    try {
      const found = await this.disk!.get(hash);
      if (found && found.meta.key !== key) {
        // The full hash matched, the key did not: damage.
        this.disk!.remove(hash);
        throw new CorruptEntryError('metadata belongs to another key');
      }
      return found;
    } catch (err) {
      const url = key.slice(key.indexOf(' ') + 1).split('\n')[0];
      this.report.event('corrupt', url, { key, reason: err instanceof CorruptEntryError ? err.reason : String(err) });
      return null;
    }
  }

  /** A record read from disk, as an entry kept in memory. */
  private loaded(meta: EntryMeta, body: Buffer | null): Entry {
    const entry = this.fromRecord(meta, body);
    this.remember(entry);
    return entry;
  }

  /** A record read from disk, as an entry (not kept): its body with it if small enough to keep in memory. */
  private fromRecord(meta: EntryMeta, body: Buffer | null): Entry {
    return entryFromStored(meta, body && body.length <= this.share ? body : null);
  }

  /** An entry's metadata (always loaded with the entry; kept for its callers). */
  async load(entry: Entry): Promise<LoadedMeta | null> {
    return entry.meta;
  }

  /**
   * A stored response that answers a plain request as it is: fresh, no policy evaluation
   * needed, its body in memory. An entry not in memory is read from disk at once (one
   * synchronous pread from the page cache, see EntryStore.getNow), so a hit on any of a
   * million entries takes the quick path, and kept in memory from its second read
   * (RecentReads); null sends the request down the asynchronous path.
   */
  freshInMemory(href: string, headers: IncomingHttpHeaders): Entry | null {
    // One lookup for a URL that does not vary: a response without Vary in memory under the plain
    // key is the URL's current one (a varying response stored for the URL takes it out of
    // memory: the marker's write, supersedePlain), so the vary markers need not be asked.
    let entry = this.index.get(plainKey(href));
    if (entry === undefined || entry.vary !== null) {
      entry = this.index.get(this.keyFor(href, headers));
      if (entry === undefined && this.disk !== null) entry = this.loadNow(href, headers);
    }
    if (entry === undefined || !answersAsItIs(entry)) return null;
    this.disk?.touchRef(entry);
    return entry;
  }

  /** A request's entry read from disk synchronously (its URL's vary marker first, if that is not known), or undefined. */
  private loadNow(href: string, headers: IncomingHttpHeaders): Entry | undefined {
    const disk = this.disk!;
    let known = this.markers.get(href);
    let key = known?.vary ? variantKey(href, known.vary, headers) : plainKey(href);
    let found = disk.getNow(hashKey(key));
    if (!found) return undefined;
    if (isMarker(found.meta)) {
      if (known) return undefined;
      known = markerFrom(found.meta);
      this.markers.set(href, known);
      key = variantKey(href, known.vary!, headers);
      const inMemory = this.index.get(key);
      if (inMemory) return inMemory;
      found = disk.getNow(hashKey(key));
      if (!found || isMarker(found.meta)) return undefined;
    }
    if (found.meta.key !== key) return undefined;
    const entry = this.fromRecord(found.meta, found.body);
    // Answered at once and kept in memory from its second ask (RecentReads), and only then is the
    // URL noted as not varying (the markers' LRU would churn as the memory tier did); an entry
    // the quick path cannot answer is kept now, for the ordinary path that looks it up next.
    if (answersAsItIs(entry) && !this.recentReads.askedAgain(entry.hash)) return entry;
    if (!known) this.markers.set(href, NOT_VARYING);
    this.remember(entry);
    return entry;
  }

  /** Entries for the UI, most recently used first, at most `limit`. */
  async list(limit = LIST_LIMIT): Promise<Entry[]> {
    const out: Entry[] = [];
    if (!this.disk) {
      for (const e of this.index.values()) {
        if (out.length >= limit) break;
        out.push(e);
      }
      return out;
    }
    for await (const meta of this.disk.entries(Infinity)) {
      if (out.length >= limit) break;
      if (isMarker(meta)) continue;
      out.push(this.index.peek(meta.key) ?? summaryEntry(meta));
    }
    return out;
  }

  // ---------------------------------------------------------------- loading

  /** The body in memory, reading (and checking) it from disk if it is small enough to keep; null if it must be streamed. */
  async memoryBody(entry: Entry): Promise<Buffer | null> {
    if (entry.body) return entry.body;
    if (!this.disk) return null;
    const inline = !this.disk.hasBodyFile(entry.hash);
    if (!inline && entry.size > this.share) return null;
    const body = await this.disk.readBody(entry.hash, entry.digest, entry.size);
    if (entry.size <= this.share && this.index.peek(entry.key) === entry) {
      // An inline body is a view into the record read; a file's is its own.
      entry.body = keptBody(body);
      // Set again, so its size counts the body now.
      this.index.set(entry.key, entry);
    }
    return body;
  }

  /** The body file, checked, to stream from. */
  openBody(entry: Entry): Promise<FileHandle> {
    if (!this.disk) return Promise.reject(new CorruptEntryError('no disk tier'));
    return this.disk.openVerified(entry.hash, entry.digest, entry.size);
  }

  /** The whole body, from memory or checked from disk (for the UI). */
  async wholeBody(entry: Entry): Promise<Buffer> {
    if (entry.body) return entry.body;
    if (!this.disk) throw new CorruptEntryError('no disk tier');
    return this.disk.readBody(entry.hash, entry.digest, entry.size);
  }

  // ---------------------------------------------------------------- inserting

  /** A writer for a body on its way in, or null without a (writable) disk tier. */
  newBodyFile(): StoreWriter | null {
    return this.disk ? this.disk.newWriter() : null;
  }

  /**
   * Publishes a complete response as an entry: on disk first (once that resolves it survives a
   * crash), then in memory. Resolves with the entry, or why it could not be kept.
   */
  async insertNew(n: NewEntry): Promise<Entry | 'disk-error' | 'no-capacity' | 'closed'> {
    const { record, body, file } = n;
    let loadedMeta = loadMeta(n.policy, n.statusMessage, n.raw, n.requestHeaders);
    if (this.closed) {
      file?.abort();
      return 'closed';
    }
    let onDisk = false;
    if (this.disk && file) {
      if (record.size > this.capacity) {
        file.abort();
        return 'no-capacity';
      }
      const meta = storedMeta(record, loadedMeta);
      try {
        if (record.vary) await this.markers.addVariant(record.url, record.vary, record.key);
        await this.disk.commit(file, meta);
        record.digest = meta.digest;
        onDisk = true;
        // In memory as it would be loaded from its record: two strings, not the policy's objects.
        if (meta.v === 2) loadedMeta = compactLoaded(meta);
      } catch (err) {
        // Kept in memory only, while it fits there.
        this.warnDisk(err);
      }
      if (!record.vary) this.markers.set(record.url, NOT_VARYING);
      else if (!onDisk) this.markers.set(record.url, { vary: record.vary, variants: [record.key] });
    }
    if (!onDisk && !body) return 'disk-error';
    if (!record.digest && body) record.digest = bodyDigestOf(body);
    const entry: Entry = {
      ...record,
      meta: loadedMeta,
      body: body && (!onDisk || record.size <= this.share) ? body : null,
      onDisk,
      diskId: -1,
      diskStamp: 0,
    };
    if (this.closed) return 'closed';
    if (!this.insert(entry)) return 'no-capacity';
    return entry;
  }

  /** Writes an entry's changed metadata (after a 304). */
  saveMeta(entry: Entry): void {
    if (!this.disk || !entry.meta) return;
    const full = storedMeta(entry, entry.meta);
    this.track(this.disk.writeMeta(full).catch((err) => this.warnDisk(err)));
  }

  /** Lists an entry; false if it could not be kept (larger than the whole store). */
  private insert(entry: Entry): boolean {
    this.supersedePlain(entry);
    if (this.disk) {
      this.remember(entry);
      return entry.onDisk ? this.disk.has(entry.hash) : this.index.peek(entry.key) === entry;
    }
    this.index.set(entry.key, entry);
    if (!this.index.has(entry.key)) return false;
    let keys = this.keysByUrl.get(entry.url);
    if (!keys) this.keysByUrl.set(entry.url, (keys = new Set()));
    keys.add(entry.key);
    this.markers.set(entry.url, entry.vary ? { vary: entry.vary, variants: [...keys] } : NOT_VARYING);
    return true;
  }

  /** Keeps a loaded entry in memory (disk mode). */
  private remember(entry: Entry): void {
    this.supersedePlain(entry);
    this.index.set(entry.key, entry);
    if (this.index.peek(entry.key) === entry) this.byPrefix.set(entry.hash.slice(0, 16), entry);
  }

  /**
   * A varying response for a URL: an earlier response without Vary under the URL's plain key
   * leaves memory (memory mode: the store; it is no longer reachable by key), so that a plain-key
   * entry in memory always is the URL's current response.
   */
  private supersedePlain(entry: Entry): void {
    if (entry.vary === null) return;
    const pk = plainKey(entry.url);
    if (pk === entry.key) return;
    const plain = this.index.peek(pk);
    if (plain !== undefined && plain.vary === null) this.index.delete(pk);
  }

  // ---------------------------------------------------------------- removing

  drop(entry: Entry, action: CacheAction, reason: string): void {
    if (this.disk) {
      this.forget(entry.key);
      this.disk.remove(entry.hash);
    } else if (this.index.peek(entry.key) === entry) this.index.delete(entry.key);
    this.report.event(action, entry.url, { key: entry.key, reason, size: entry.size, status: entry.status });
  }

  private forget(key: string): void {
    const loaded = this.index.peek(key);
    if (loaded) this.index.delete(key);
  }

  /** Drops every stored variant of a URL. */
  async dropUrl(href: string, action: CacheAction, reason: string): Promise<void> {
    if (!this.disk) {
      const keys = this.keysByUrl.get(href);
      if (!keys) return;
      for (const key of [...keys]) {
        const entry = this.index.peek(key);
        if (entry) this.drop(entry, action, reason);
      }
      return;
    }
    const marker = await this.markers.markerOf(href);
    for (const key of marker ? marker.variants : [plainKey(href)]) {
      const entry = await this.find(key, false);
      if (entry) this.drop(entry, action, reason);
    }
    if (marker) {
      this.disk.remove(hashKey(plainKey(href)));
      this.markers.delete(href);
    }
  }

  /** Removes the entries whose URL passes `test` (purge by host). */
  async dropWhere(test: (url: string) => boolean, action: CacheAction, reason: string): Promise<number> {
    let n = 0;
    if (!this.disk) {
      for (const entry of [...this.index.values()]) {
        if (!test(entry.url)) continue;
        this.drop(entry, action, reason);
        n++;
      }
      return n;
    }
    for await (const meta of this.disk.entries(Infinity)) {
      if (!test(meta.url)) continue;
      this.forget(meta.key);
      this.disk.remove(meta.hash);
      if (isMarker(meta)) {
        this.markers.delete(meta.url);
        continue;
      }
      this.report.event(action, meta.url, { key: meta.key, reason, size: meta.size, status: meta.status });
      n++;
    }
    return n;
  }

  async dropAll(): Promise<number> {
    if (this.disk) {
      const n = this.disk.count;
      this.index.clear();
      this.markers.clear();
      await this.disk.clear();
      return n;
    }
    const n = this.index.size;
    // clear() disposes every entry.
    this.index.clear();
    this.keysByUrl.clear();
    this.markers.clear();
    return n;
  }

  /** Memory mode: an entry leaves the index (evicted, dropped, or replaced). Disk mode: it only leaves memory. */
  private leftMemory(entry: Entry, key: string, reason: LRUCache.DisposeReason): void {
    if (this.disk) {
      const prefix = entry.hash.slice(0, 16);
      if (this.byPrefix.get(prefix) === entry) this.byPrefix.delete(prefix);
      return;
    }
    if (reason === 'set') return; // Replaced by a new entry for the key.
    const keys = this.keysByUrl.get(entry.url);
    if (keys) {
      keys.delete(key);
      if (keys.size === 0) {
        this.keysByUrl.delete(entry.url);
        this.markers.delete(entry.url);
      }
    }
    if (reason === 'evict') this.report.event('evicted', entry.url, { key, reason: 'lru', size: entry.size, status: entry.status });
  }

  /** The disk store removed an entry to stay within the size limit. */
  private evictedFromDisk(prefix: string): void {
    const entry = this.byPrefix.get(prefix);
    if (!entry) return;
    this.byPrefix.delete(prefix);
    if (this.index.peek(entry.key) === entry) this.index.delete(entry.key);
    this.report.event('evicted', entry.url, { key: entry.key, reason: 'lru', size: entry.size, status: entry.status });
  }

  // ---------------------------------------------------------------- limits, flushing, closing

  /** (Re)builds the memory LRU for new limits, keeping entries (least recent first, so order survives). */
  private configure(limits: StoreLimits, carry: Entry[]): void {
    this.limits = limits;
    const diskMode = this.disk !== null;
    const memoryBytes = Math.floor(limits.maxMemoryMB * MiB);
    this.share = diskMode ? Math.floor(memoryBytes / 8) : Math.min(memoryBytes, this.capacity);
    this.markers.reset(diskMode);
    this.index = memoryTier(limits, diskMode, this.capacity, (entry, key, reason) => this.leftMemory(entry, key, reason));
    // A disk index still loading takes its limits once it is in (see openDisk).
    if (this.disk?.loaded) this.disk.setLimits(this.effectiveMaxBytes(), limits.maxEntries);
    for (const entry of carry) {
      if (!diskMode && entry.body === null) continue;
      if (entry.body && entry.size > this.share && diskMode) entry.body = null;
      this.insert(entry);
    }
  }

  /** maxSizeMB, but never more than a share of the free disk (see diskSizeLimit). */
  private effectiveMaxBytes(freeBytes = this.freeDiskBytes()): number {
    return diskSizeLimit(this.limits, this.disk ? this.disk.bytes : 0, this.disk ? freeBytes : null, this.report);
  }

  private freeDiskBytes(): number | null {
    return this.disk ? freeDiskBytes(this.disk.dir) : null;
  }

  /** Applies new limits without losing entries; a new directory moves to that directory's store. */
  async reconfigure(limits: StoreLimits): Promise<void> {
    if (limits.dir !== this.limits.dir) {
      await this.flush();
      await this.disk?.close().catch(() => {});
      this.diskWarned = false;
      this.limits = limits;
      this.keysByUrl.clear();
      this.markers.clear();
      this.byPrefix.clear();
      await this.openDisk(limits.dir);
      return;
    }
    const entries = this.oldestFirst();
    // Dropping the old LRU without clear(): its entries live on in the new one.
    this.keysByUrl.clear();
    this.markers.clear();
    this.byPrefix.clear();
    this.configure(limits, entries);
  }

  /**
   * Opens the disk tier and returns once it takes writes; its index loads in the background
   * (EntryStore.start), and what needs it waits for it. Once it is in, the limits apply and the
   * start is reported; if it cannot be loaded, the cache goes on in memory.
   */
  private async openDisk(dir: string | null): Promise<void> {
    this.disk = null;
    if (dir) {
      try {
        this.disk = await EntryStore.start(dir, {
          maxBytes: Math.floor(this.limits.maxSizeMB * MiB),
          maxEntries: this.limits.maxEntries,
          onEvict: (prefix) => this.evictedFromDisk(prefix),
          onMigrated: (n) => this.report.notice('info', `cache: ${n} entries of the previous cache layout in ${dir} migrated`),
        });
      } catch (err) {
        this.warnDisk(err, dir);
      }
    }
    this.configure(this.limits, []);
    const disk = this.disk;
    if (!disk) return;
    const freeAtOpen = this.freeDiskBytes();
    this.track(
      disk.ready.then(
        () => {
          if (this.disk !== disk) return;
          disk.setLimits(this.effectiveMaxBytes(freeAtOpen), this.limits.maxEntries);
          reportOpened(this.report, disk, dir!);
        },
        (err) => {
          if (this.disk !== disk) return;
          this.warnDisk(err, dir!);
          this.disk = null;
          this.configure(this.limits, this.oldestFirst());
        },
      ),
    );
  }

  private warnDisk(err: unknown, dir = this.limits.dir): void {
    if (this.diskWarned) return;
    this.diskWarned = true;
    this.report.notice('warn', diskWarning(err, dir));
  }

  /** Remembers a write in progress, so flush() and close() wait for it. */
  track<T>(p: Promise<T>): void {
    const guarded = p.catch(() => {});
    this.pendingWrites.add(guarded);
    void guarded.then(() => this.pendingWrites.delete(guarded));
  }

  /** Resolves once every write in progress (and any they started) is done. */
  async flush(): Promise<void> {
    while (this.pendingWrites.size) await Promise.all([...this.pendingWrites]);
    await this.disk?.settled();
  }

  private oldestFirst(): Entry[] {
    const out: Entry[] = [];
    for (const e of this.index.rvalues()) if (e) out.push(e);
    return out;
  }

  /** Flushes, stops taking entries, and leaves the index for a fast next start. */
  async close(): Promise<void> {
    await this.flush();
    this.closed = true;
    await this.disk?.close().catch((err) => this.warnDisk(err));
  }
}

/** A stored response the quick path answers as it is: fresh, no policy to evaluate, its body in memory. */
function answersAsItIs(entry: Entry): boolean {
  return entry.body !== null && entry.meta !== null && entry.meta.fastOk && Date.now() < entry.freshUntil;
}
