import type { FileHandle } from 'node:fs/promises';
import type { IncomingHttpHeaders } from 'node:http';
import { LRUCache } from 'lru-cache';
import type { CacheConfig } from '../core/config';
import type { CacheAction } from '../core/events';
import { CorruptEntryError, DiskStore, toRecord, type BodyWriter, type EntryMeta, type IndexRecord } from './disk';
import { loadMeta, type Entry, type LoadedMeta } from './entry';
import type { CacheReport } from './report';
import { plainKey, variantKey } from './rules';
import { freshUntil, restorePolicy, storedRequestHeaders, storePolicy } from './semantics';
import { bodyDigestOf } from './digest';

const MiB = 1024 * 1024;

/** The settings the store itself obeys: where and how much. */
export type StoreLimits = Pick<CacheConfig, 'dir' | 'maxEntries' | 'maxSizeMB' | 'maxMemoryMB'>;

/** A response complete and ready to become an entry. */
export interface NewEntry {
  record: IndexRecord;
  statusMessage: string;
  raw: string[];
  policy: LoadedMeta['policy'];
  requestHeaders: Record<string, string>;
  /** The body in memory, if it was small enough to collect. */
  body: Buffer | null;
  /** Its temp file, if there is a disk tier. */
  file: BodyWriter | null;
}

/**
 * The stored entries: an index of every entry (LRU by count and bytes) over a disk tier, and a
 * memory tier of hot bodies (LRU by bytes). Without a disk tier the index is the memory tier.
 * Everything the cache stores, reads or removes goes through here.
 */
export class Store {
  private disk: DiskStore | null = null;
  private diskWarned = false;
  private index!: LRUCache<string, Entry>;
  /** Disk mode only: the entries whose bodies are held in memory, LRU by bytes. */
  private hot: LRUCache<string, Entry> | null = null;
  private share = 0;
  /** URL -> request header names its responses vary on (from the latest stored one). */
  private readonly varyByUrl = new Map<string, string[]>();
  /** URL -> keys of its stored variants, for invalidation and purge. */
  private readonly keysByUrl = new Map<string, Set<string>>();
  private readonly pendingWrites = new Set<Promise<unknown>>();
  private closed = false;

  constructor(
    private limits: StoreLimits,
    private readonly report: CacheReport,
  ) {
    this.configure(limits, []);
  }

  /** Opens the disk tier (if any) and lists what it holds. */
  async open(): Promise<void> {
    await this.openDisk(this.limits.dir);
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
    return this.index.size;
  }

  get bytes(): number {
    return this.index.calculatedSize ?? 0;
  }

  get memoryBytes(): number {
    return this.hot ? (this.hot.calculatedSize ?? 0) : this.bytes;
  }

  // ---------------------------------------------------------------- finding entries

  keyFor(href: string, headers: IncomingHttpHeaders): string {
    const vary = this.varyByUrl.get(href);
    return vary ? variantKey(href, vary, headers) : plainKey(href);
  }

  /** Some variant of the URL is stored. */
  hasUrl(href: string): boolean {
    return this.keysByUrl.has(href);
  }

  /** The entry for a key, marked as used. */
  get(key: string): Entry | undefined {
    return this.index.get(key);
  }

  /** The entry for a key, not marked as used. */
  peek(key: string): Entry | undefined {
    return this.index.peek(key);
  }

  /** A stored response that answers a plain request as it is: in memory, fresh, no policy evaluation needed. */
  freshInMemory(href: string, headers: IncomingHttpHeaders): Entry | null {
    const entry = this.index.get(this.keyFor(href, headers));
    if (entry === undefined || entry.body === null || entry.meta === null || !entry.meta.fastOk || Date.now() >= entry.freshUntil) return null;
    this.hot?.get(entry.key);
    return entry;
  }

  entries(): IterableIterator<Entry> {
    return this.index.values();
  }

  // ---------------------------------------------------------------- loading

  /** An entry's metadata, read from disk on first use after a restart; null (entry dropped) if unreadable. */
  async load(entry: Entry): Promise<LoadedMeta | null> {
    if (entry.meta) return entry.meta;
    if (!this.disk) return null;
    try {
      const meta = await this.disk.readMeta(entry.hash);
      if (meta.key !== entry.key) throw new CorruptEntryError('metadata belongs to another key');
      const policy = restorePolicy(meta.policy);
      entry.meta = loadMeta(policy, meta.statusMessage, meta.raw, storedRequestHeaders(meta.policy));
      entry.freshUntil = freshUntil(policy);
      return entry.meta;
    } catch (err) {
      this.drop(entry, 'corrupt', err instanceof CorruptEntryError ? err.reason : 'metadata unreadable');
      return null;
    }
  }

  /** The body in memory, reading (and checking) it from disk if it is small enough to keep; null if it must be streamed. */
  async memoryBody(entry: Entry): Promise<Buffer | null> {
    if (entry.body) return entry.body;
    if (!this.disk || entry.size > this.share) return null;
    const body = await this.disk.readBody(entry.hash, entry.digest, entry.size);
    if (this.index.peek(entry.key) === entry && this.hot) {
      entry.body = body;
      this.hot.set(entry.key, entry);
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

  /** A temp file for a body on its way in, or null without a (writable) disk tier. */
  newBodyFile(): BodyWriter | null {
    if (!this.disk) return null;
    try {
      return this.disk.newWriter();
    } catch (err) {
      this.warnDisk(err);
      return null;
    }
  }

  /**
   * Publishes a complete response as an entry: its files first (body, then metadata), then the
   * index. Resolves with the entry, or why it could not be kept.
   */
  async insertNew(n: NewEntry): Promise<Entry | 'disk-error' | 'no-capacity' | 'closed'> {
    const { record, body, file } = n;
    let onDisk = false;
    if (file && this.disk) {
      try {
        record.digest = await file.finish();
        const meta: EntryMeta = { ...record, v: 1, statusMessage: n.statusMessage, raw: n.raw, policy: storePolicy(n.policy) };
        await this.disk.commit(file, meta, record.size > this.share);
        onDisk = true;
      } catch (err) {
        this.warnDisk(err);
      }
    }
    if (!onDisk && !body) return 'disk-error';
    if (!record.digest && body) record.digest = bodyDigestOf(body);
    const entry: Entry = {
      ...record,
      meta: loadMeta(n.policy, n.statusMessage, n.raw, n.requestHeaders),
      body: body && (!onDisk || record.size <= this.share) ? body : null,
      onDisk,
    };
    if (this.closed) return 'closed';
    if (!this.insert(entry)) {
      if (onDisk && this.disk) this.track(this.disk.remove(record.hash));
      return 'no-capacity';
    }
    return entry;
  }

  /** Writes an entry's changed metadata (after a 304) to its file. */
  saveMeta(entry: Entry): void {
    if (!entry.onDisk || !this.disk || !entry.meta) return;
    const full: EntryMeta = { ...toRecord(entry), v: 1, statusMessage: entry.meta.statusMessage, raw: entry.meta.raw, policy: storePolicy(entry.meta.policy) };
    this.track(this.disk.writeMeta(full).catch((err) => this.warnDisk(err)));
  }

  /** Lists an entry; false if the index could not keep it (larger than the whole store). */
  private insert(entry: Entry): boolean {
    this.index.set(entry.key, entry);
    if (!this.index.has(entry.key)) return false;
    let keys = this.keysByUrl.get(entry.url);
    if (!keys) this.keysByUrl.set(entry.url, (keys = new Set()));
    keys.add(entry.key);
    if (entry.vary) this.varyByUrl.set(entry.url, entry.vary);
    else this.varyByUrl.delete(entry.url);
    if (entry.body && this.hot) this.hot.set(entry.key, entry);
    return true;
  }

  // ---------------------------------------------------------------- removing

  drop(entry: Entry, action: CacheAction, reason: string): void {
    if (this.index.peek(entry.key) === entry) this.index.delete(entry.key);
    this.report.event(action, entry.url, { key: entry.key, reason, size: entry.size, status: entry.status });
  }

  /** Drops every stored variant of a URL. */
  dropUrl(href: string, action: CacheAction, reason: string): void {
    const keys = this.keysByUrl.get(href);
    if (!keys) return;
    for (const key of [...keys]) {
      const entry = this.index.peek(key);
      if (entry) this.drop(entry, action, reason);
    }
  }

  dropAll(): number {
    const n = this.index.size;
    // clear() disposes every entry: its files are removed.
    this.index.clear();
    this.hot?.clear();
    this.keysByUrl.clear();
    this.varyByUrl.clear();
    return n;
  }

  /** An entry leaves the index: evicted (least recently used), dropped, or replaced. */
  private evicted(entry: Entry, key: string, reason: LRUCache.DisposeReason): void {
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
    if (reason === 'evict') this.report.event('evicted', entry.url, { key, reason: 'lru', size: entry.size, status: entry.status });
  }

  // ---------------------------------------------------------------- limits, flushing, closing

  /** (Re)builds both LRUs for new limits, keeping entries (least recent first, so order survives). */
  private configure(limits: StoreLimits, carry: Entry[]): void {
    this.limits = limits;
    const diskMode = this.disk !== null;
    const memoryBytes = Math.floor(limits.maxMemoryMB * MiB);
    this.share = diskMode ? Math.floor(memoryBytes / 8) : Math.min(memoryBytes, this.capacity);
    this.index = new LRUCache<string, Entry>({
      max: limits.maxEntries,
      maxSize: Math.max(1, this.capacity),
      sizeCalculation: (e) => Math.max(1, e.size),
      dispose: (entry, key, reason) => this.evicted(entry, key, reason),
    });
    this.hot =
      diskMode && memoryBytes > 0
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
      if (!diskMode && entry.body === null) continue;
      if (entry.body && entry.size > this.share && entry.onDisk) entry.body = null;
      this.insert(entry);
    }
  }

  /** Applies new limits without losing entries; a new directory moves to that directory's store. */
  async reconfigure(limits: StoreLimits): Promise<void> {
    const entries = this.oldestFirst();
    if (limits.dir !== this.limits.dir) {
      await this.flush();
      if (this.disk) await this.disk.saveIndex(entries.filter((e) => e.onDisk).map(toRecord)).catch(() => {});
      this.diskWarned = false;
      this.limits = limits;
      this.varyByUrl.clear();
      this.keysByUrl.clear();
      await this.openDisk(limits.dir);
      return;
    }
    // Dropping the old LRUs without clear(): their entries live on in the new ones.
    this.varyByUrl.clear();
    this.keysByUrl.clear();
    this.configure(limits, entries);
  }

  private async openDisk(dir: string | null): Promise<void> {
    this.disk = null;
    if (!dir) {
      this.configure(this.limits, []);
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
    this.configure(this.limits, []);
    for (const r of records) {
      // Completed in place: 100,000 copies would cost more than the reading.
      const entry = r as Entry;
      entry.meta = null;
      entry.body = null;
      entry.onDisk = true;
      this.insert(entry);
    }
    if (records.length) {
      this.report.notice('info', `cache: ${this.index.size} entries loaded from ${dir} in ${Math.round(performance.now() - started)} ms${fromIndex ? '' : ' (metadata scan)'}`);
    }
  }

  private warnDisk(err: unknown, dir = this.limits.dir): void {
    if (this.diskWarned) return;
    this.diskWarned = true;
    const e = err as NodeJS.ErrnoException;
    const why = e.code === 'ENOSPC' ? 'the disk is full' : e.code === 'EROFS' || e.code === 'EACCES' || e.code === 'EPERM' ? 'it is not writable' : e.message;
    this.report.notice('warn', `cache: cannot write to ${dir} (${why}); proxying continues, responses are kept in memory only`);
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
    if (this.disk) {
      const records = this.oldestFirst().filter((e) => e.onDisk).map(toRecord);
      await this.disk.saveIndex(records).catch((err) => this.warnDisk(err));
    }
  }
}

