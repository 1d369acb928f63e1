import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { CorruptEntryError, type EntryMeta } from '../entryMeta';
import { IndexJournal, Op } from './journal';
import { hashHalves, KeyIndex, type Location } from './keyIndex';
export { hashKey } from './keyIndex';
import { CorruptRecordError, decodeRecord, packTargetFor, Packs } from './packs';
import { checkedRecord, metaOf, ownCopy, recordOf } from './records';
import { INLINE_MAX, StoreWriter } from './writer';
import { unlockStore, type LockTaken } from './lock';
import { LegacyMigration } from './migrate';
import { BodyFiles } from './bodyFiles';
import { StoreUpkeep } from './upkeep';
import { openIndex, prepareStoreDir, type OpenReport } from './opening';
export type { OpenReport } from './opening';
/** Touches are written to the journal this often (a crash forgets at most this much LRU order). */
const TOUCH_FLUSH_MS = 1000;

export interface StoreOptions {
  /** The size limit: least recently used entries are removed once the entries' bytes exceed it. */
  maxBytes: number;
  /** At most this many entries (0: no limit). */
  maxEntries?: number;
  /** Called for every entry removed to stay within maxBytes, with the first 16 hex digits of its hash. */
  onEvict?: (hashPrefix: string) => void;
  /** Called once the old layout (entries/, index.json) has been migrated completely. */
  onMigrated?: (count: number) => void;
  /** Size at which a new pack file is started (tests set it; otherwise packTargetFor the size limit). */
  packBytes?: number;
}

/** What a lookup finds: the entry's metadata, and its body when that is kept inline (already checked). */
export interface StoredEntry {
  meta: EntryMeta;
  body: Buffer | null;
}

/**
 * What getNow reads records into: one buffer for every synchronous lookup, since only the body
 * leaves it (copied). A new buffer per cold hit was garbage outside V8's heap that a GC frees
 * only after tens of MB of it (V8 lets external memory grow 64 MB between collections), and
 * the allocator kept the pages (session 8, docs/BENCHMARKS.md).
 */
const SCRATCH_BYTES = 2 * INLINE_MAX;

function prefixOf(h0: number, h1: number): string {
  return h0.toString(16).padStart(8, '0') + h1.toString(16).padStart(8, '0');
}

/**
 * The disk tier for a million entries (see docs/ARCHITECTURE.md, "The disk store"): entries
 * found by the SHA-256 of their key through a compact in-memory index (keyIndex.ts) that a
 * snapshot and a journal restore at start without reading the entries (journal.ts); metadata
 * and small bodies packed into append-only files (packs.ts); larger bodies in files of their own,
 * named after their record's place, so they stream. Under <dir>/store:
 *   index.snap, journal.<n>   the index
 *   packs/<n>.pack            records
 *   bodies/<pack>/<offset>    bodies over INLINE_MAX
 * and <dir>/tmp for writes in progress (emptied at start). Checkpoints, compaction and the
 * sweep after a crash are its upkeep (upkeep.ts); this class serves, writes and evicts.
 */
/** What touchRef needs of an entry: its hash, and where it was found in the index last time. */
export interface DiskRef {
  readonly hash: string;
  diskId: number;
  diskStamp: number;
}

export class EntryStore {
  readonly storeDir: string;
  readonly tmpDir: string;
  private readonly bodies: BodyFiles;
  /** Empty until the index is loaded (see ready): lookups and writes wait for it, the rest sees an empty store. */
  private index = new KeyIndex();
  private journal!: IndexJournal;
  private packs!: Packs;
  private readonly scratch = Buffer.allocUnsafeSlow(SCRATCH_BYTES);
  /** Resolves once the index is loaded; rejects if it could not be (the store then stays empty and refuses writes). */
  readonly ready: Promise<void>;
  private loading: Promise<void> | null;
  private closed = false;
  /** Checkpoints, compaction, the sweep after a crash (upkeep.ts); made once the index is in. */
  private upkeep: StoreUpkeep | null = null;
  private readonly touchTimer: NodeJS.Timeout;
  private readonly pending = new Set<Promise<unknown>>();
  private migration: LegacyMigration | null = null;
  report!: OpenReport;

  private constructor(
    readonly dir: string,
    private options: StoreOptions,
    started: number,
    private readonly lock: LockTaken,
  ) {
    this.storeDir = path.join(dir, 'store');
    this.tmpDir = path.join(dir, 'tmp');
    this.bodies = new BodyFiles(path.join(this.storeDir, 'bodies'));
    this.touchTimer = setInterval(() => this.flushTouches(), TOUCH_FLUSH_MS);
    this.touchTimer.unref();
    this.loading = this.ready = this.load(started);
    this.track(this.ready);
  }

  /** Opens (or creates) the store and waits for its index (tools and tests; the proxy uses start). */
  static async open(dir: string, options: StoreOptions): Promise<EntryStore> {
    const store = await EntryStore.start(dir, options);
    await store.ready;
    return store;
  }

  /**
   * Opens (or creates) the store, and resolves once it takes writers: the directories made, the
   * lock taken, tmp emptied. The index (snapshot and journals, tens of MB for a million entries)
   * is loaded in the background from then on, yielding to the event loop as it goes, so the
   * proxy listens without waiting for it; `ready` says when it is in. Until then every lookup,
   * write and removal waits for it (a request for a stored URL is answered from the store, only
   * later), so nothing is missed or overwritten. Nothing here reads entries, so it takes the same
   * time after a crash. An old-layout cache in dir is migrated in the background; its entries
   * are served meanwhile.
   */
  static async start(dir: string, options: StoreOptions): Promise<EntryStore> {
    const started = performance.now();
    const prepared = await prepareStoreDir(dir);
    return new EntryStore(prepared.root, options, started, prepared.lock);
  }

  /** The index, from the snapshot and journals, then the packs; then the background work of a start. */
  private async load(started: number): Promise<void> {
    try {
      const opened = await openIndex(this.storeDir, this.lock, this.options.packBytes ?? packTargetFor(this.options.maxBytes));
      const { journal, packs } = opened;
      this.journal = journal;
      this.packs = packs;
      this.index = opened.index;
      this.upkeep = new StoreUpkeep({
        index: opened.index,
        journal,
        packs,
        bodies: this.bodies,
        isClosed: () => this.closed,
        track: (work) => this.track(work),
        dropIfAt: (h0, h1, loc) => this.dropIfAt(h0, h1, loc),
      });
      this.migration = LegacyMigration.detect(this.dir, this);
      this.report = {
        entries: this.index.count,
        bytes: this.index.totalBytes,
        fromSnapshot: opened.fromSnapshot,
        journalRecords: opened.journalRecords,
        ms: performance.now() - started,
        afterCrash: opened.afterCrash,
        staleLockHolder: this.lock.holder,
        migrating: this.migration !== null,
        snapshotDamaged: opened.snapshotDamaged,
      };
    } catch (err) {
      this.closed = true;
      clearInterval(this.touchTimer);
      unlockStore(this.storeDir);
      throw err;
    } finally {
      this.loading = null;
    }
    const upkeep = this.upkeep!;
    this.evict();
    // Background work, once the requests that waited for the index have had their turn.
    setImmediate(() => {
      if (this.closed) return;
      if (this.report.afterCrash) this.track(upkeep.sweepOrphanBodies());
      if (this.migration) {
        const migration = this.migration;
        this.track(
          migration.run().then((count) => {
            if (this.migration === migration) this.migration = null;
            this.options.onMigrated?.(count);
          }),
        );
      }
      upkeep.maybeCompact();
    });
  }

  /** Whether the index is in (until then the store looks empty to has(), count and bytes). */
  get loaded(): boolean {
    return this.loading === null;
  }

  get count(): number {
    return this.index.count;
  }

  /** Bytes the entries account for (records and body files): what the size limit bounds. */
  get bytes(): number {
    return this.index.totalBytes;
  }

  /** Bytes on disk: pack files (live records and garbage not yet compacted) plus body files. */
  diskUsage(): { packBytes: number; liveBytes: number } {
    return { packBytes: this.packs ? this.packs.diskBytes : 0, liveBytes: this.index.totalBytes };
  }

  get migrating(): boolean {
    return this.migration !== null;
  }

  setLimits(maxBytes: number, maxEntries = 0): void {
    this.options = { ...this.options, maxBytes, maxEntries };
    if (this.options.packBytes === undefined) this.packs?.setTarget(packTargetFor(maxBytes));
    // While the index loads, the limits apply once it is in.
    if (this.loaded) this.evict();
  }

  newWriter(): StoreWriter {
    return new StoreWriter(this.tmpDir);
  }

  /** Whether an entry for this hash is in the index (an entry of an old layout still being migrated is not yet). */
  has(hash: string): boolean {
    const [h0, h1] = hashHalves(hash);
    return this.index.find(h0, h1) >= 0;
  }

  /** Marks an entry as just used (LRU order); written to the journal within a second. */
  touch(hash: string): void {
    const [h0, h1] = hashHalves(hash);
    const id = this.index.find(h0, h1);
    if (id < 0) return;
    this.index.touch(id);
    this.journal.touched(this.index, id);
  }

  /**
   * touch() for a caller that keeps where its entry is in the index (`ref.diskId` and
   * `ref.diskStamp`, -1 and 0 at first; updated here): while that still names the entry, no
   * hashing and no probing (a hit's touch among 100,000 entries read the hash's text, the
   * probe table and both hash arrays, each a cache miss).
   */
  touchRef(ref: DiskRef): void {
    let id = ref.diskId;
    if (id < 0 || this.index.stampOf(id) !== ref.diskStamp) {
      const [h0, h1] = hashHalves(ref.hash);
      id = this.index.find(h0, h1);
      if (id < 0) return;
      ref.diskId = id;
      ref.diskStamp = this.index.stampOf(id);
    }
    this.index.touch(id);
    this.journal.touched(this.index, id);
  }

  /**
   * The entry stored for a hash, or null. A damaged record or body is removed and reported
   * with CorruptEntryError, never returned.
   */
  async get(hash: string): Promise<StoredEntry | null> {
    if (!(await this.usable())) return null;
    const [h0, h1] = hashHalves(hash);
    let id = this.index.find(h0, h1);
    if (id < 0 && this.migration) {
      await this.migration.importOne(hash);
      id = this.index.find(h0, h1);
    }
    if (id < 0) return null;
    const loc = this.index.location(id);
    try {
      return checkedRecord(this.packs.readNow(loc.pack, loc.offset, loc.length), hash);
    } catch (err) {
      if (!(err instanceof CorruptRecordError)) throw err;
      this.dropIfAt(h0, h1, loc);
      throw new CorruptEntryError(err.message);
    }
  }

  /**
   * The entry stored for a hash, read at once (one synchronous pread, see Packs.readNow), or
   * null if the store has none; undefined when only get() can say: the index is still loading,
   * an old layout is being migrated, or the record is damaged (get() removes and reports it).
   */
  getNow(hash: string): StoredEntry | null | undefined {
    if (this.loading || this.migration || this.closed) return undefined;
    const [h0, h1] = hashHalves(hash);
    const id = this.index.find(h0, h1);
    if (id < 0) return null;
    try {
      const loc = this.index.location(id);
      const { meta, body } = checkedRecord(this.packs.readNow(loc.pack, loc.offset, loc.length, this.scratch), hash);
      // The scratch buffer is read into again by the next lookup.
      return { meta, body: body && ownCopy(body) };
    } catch {
      return undefined;
    }
  }

  /** The metadata stored for a hash (DiskStore's readMeta): CorruptEntryError if it is missing or damaged. */
  async readMeta(hash: string): Promise<EntryMeta> {
    const found = await this.get(hash);
    if (!found) throw new CorruptEntryError('entry not in the store');
    return found.meta;
  }

  /** The whole body, checked (DiskStore's readBody). */
  async readBody(hash: string, digest: string, size: number): Promise<Buffer> {
    const found = await this.get(hash);
    if (!found) throw new CorruptEntryError('entry not in the store');
    if (found.meta.digest !== digest || found.meta.size !== size) throw new CorruptEntryError('entry replaced');
    if (found.body) return found.body;
    const handle = await this.openVerified(hash, digest, size);
    try {
      return await BodyFiles.readWhole(handle, size);
    } finally {
      await handle.close().catch(() => {});
    }
  }

  /** Whether an entry's body is in a file of its own (streamed) rather than inline. */
  hasBodyFile(hash: string): boolean {
    const [h0, h1] = hashHalves(hash);
    const id = this.index.find(h0, h1);
    if (id < 0) return false;
    const loc = this.index.location(id);
    return loc.bytes !== loc.length;
  }

  /**
   * Opens an entry's body file, checked by reading it through against its digest first, so a
   * damaged file is never sent; the caller streams the handle from the start.
   */
  async openVerified(hash: string, expected: string, size: number): Promise<fsp.FileHandle> {
    await this.usable();
    const [h0, h1] = hashHalves(hash);
    const id = this.index.find(h0, h1);
    if (id < 0) throw new CorruptEntryError('entry not in the store');
    const loc = this.index.location(id);
    try {
      return await this.bodies.openChecked(loc, expected, size);
    } catch (err) {
      this.dropIfAt(h0, h1, loc);
      throw err;
    }
  }

  /**
   * Publishes a finished body with its metadata. A small body goes inline in the record; a
   * larger one (in the writer's temp file) is renamed to its place first, so the index never
   * points at a body that is not complete. Once this resolves the entry survives a crash.
   */
  async commit(writer: StoreWriter, meta: EntryMeta): Promise<void> {
    const { digest, body } = await writer.finish();
    meta.digest = digest;
    meta.size = writer.size;
    await this.put(meta, body, writer.tmpPath);
  }

  /** Stores an entry: `body` inline, or the complete file at `bodyFile` moved (or linked, when `link`) into the store. */
  put(meta: EntryMeta, body: Buffer | null, bodyFile: string | null, link = false, asOldest = false): Promise<void> {
    if (this.closed) return Promise.reject(new Error('the cache store is closed'));
    const run = this.doPut(meta, body, bodyFile, link, asOldest);
    this.track(run);
    return run;
  }

  private async doPut(meta: EntryMeta, body: Buffer | null, bodyFile: string | null, link: boolean, asOldest: boolean): Promise<void> {
    if (!(await this.usable()) || this.closed) throw new Error('the cache store is closed');
    const inline = body !== null && body.length <= INLINE_MAX ? body : null;
    if (!inline && bodyFile === null) throw new Error('a body larger than INLINE_MAX needs its file');
    const record = recordOf(meta, inline);
    const loc = this.packs.reserve(record.length);
    await this.writeEntry(meta, inline, bodyFile, link, record, loc, asOldest);
  }

  private async writeEntry(
    meta: EntryMeta,
    inline: Buffer | null,
    bodyFile: string | null,
    link: boolean,
    record: Buffer,
    loc: { pack: number; offset: number },
    asOldest: boolean,
  ): Promise<void> {
    let bytes = record.length;
    if (!inline) {
      const target = this.bodies.pathOf(loc);
      await this.bodies.ensureDir(loc.pack);
      try {
        if (link) await fsp.link(bodyFile!, target);
        else await fsp.rename(bodyFile!, target);
      } catch (err) {
        if (!link) await fsp.unlink(bodyFile!).catch(() => {});
        throw err;
      }
      bytes += meta.size;
      // Its digest was computed from the bytes as they were written: verified as of now.
      await this.bodies.rememberWritten(target, meta.digest);
    } else if (bodyFile !== null && !link) {
      await fsp.unlink(bodyFile).catch(() => {});
    }
    try {
      await this.packs.write(loc, record);
    } catch (err) {
      if (!inline) await fsp.unlink(this.bodies.pathOf(loc)).catch(() => {});
      throw err;
    }
    if (this.closed) return;
    const [h0, h1] = hashHalves(meta.hash);
    const full: Location = { pack: loc.pack, offset: loc.offset, length: record.length, bytes };
    this.journal.append(asOldest ? Op.PutOldest : Op.Put, h0, h1, full);
    const replaced = this.index.set(h0, h1, full, asOldest);
    this.packs.addLive(full.pack, full.length);
    if (replaced) this.release(replaced);
    this.evict();
    this.afterWrite();
  }

  /** Rewrites an entry's metadata (after a 304), keeping its body. */
  async writeMeta(meta: EntryMeta): Promise<void> {
    const current = await this.get(meta.hash);
    if (!current) return;
    if (current.body) return this.put(meta, current.body, null);
    // The body file stays where it is: linked to the new record's place, then the old name goes with the old record.
    const [h0, h1] = hashHalves(meta.hash);
    const id = this.index.find(h0, h1);
    if (id < 0) return;
    return this.put(meta, null, this.bodies.pathOf(this.index.location(id)), true);
  }

  /** Removes an entry (purge, invalidation, a damaged one). */
  remove(hash: string): void {
    if (this.loading) {
      // Removed once the index is in (it may name the entry), in turn with the puts that wait
      // for it: usable() resolves them in the order they were called.
      this.track(this.usable().then((ok) => ok && this.remove(hash)));
      return;
    }
    const [h0, h1] = hashHalves(hash);
    const id = this.index.find(h0, h1);
    if (id < 0) return;
    this.removeId(id, h0, h1);
  }

  private removeId(id: number, h0: number, h1: number): void {
    this.journal.append(Op.Delete, h0, h1, null);
    this.journal.forget(id);
    this.release(this.index.remove(id));
    this.afterWrite();
  }

  private dropIfAt(h0: number, h1: number, loc: Location): void {
    const id = this.index.find(h0, h1);
    if (id < 0) return;
    const now = this.index.location(id);
    if (now.pack === loc.pack && now.offset === loc.offset) this.removeId(id, h0, h1);
  }

  /** A record no longer in the index: its pack bytes become garbage, its body file goes. */
  private release(loc: Location): void {
    this.packs.removeLive(loc.pack, loc.length);
    if (loc.bytes !== loc.length) this.track(fsp.unlink(this.bodies.pathOf(loc)).catch(() => {}));
  }

  /** Least recently used entries out until the entries fit the size limit. */
  private evict(): void {
    const maxEntries = this.options.maxEntries || Infinity;
    while ((this.index.totalBytes > this.options.maxBytes || this.index.count > maxEntries) && this.index.count > 0) {
      const id = this.index.oldest();
      const [h0, h1] = this.index.hashOf(id);
      // Told first: whoever logs evictions never misses one a crash cut short.
      this.options.onEvict?.(prefixOf(h0, h1));
      this.removeId(id, h0, h1);
    }
  }

  /** Hashes (first 16 hex digits) of every entry, least recently used first. */
  *prefixesOldestFirst(): Generator<string> {
    for (const id of this.index.oldestFirst()) {
      const [h0, h1] = this.index.hashOf(id);
      yield prefixOf(h0, h1);
    }
  }

  /**
   * Every entry's metadata, most recently used first, read from the packs (for the UI's list,
   * HAR export, purge by host). Damaged records are skipped (and removed).
   */
  async *entries(limit = Infinity): AsyncGenerator<EntryMeta> {
    if (!(await this.usable())) return;
    const ids = [];
    for (const id of this.index.newestFirst()) {
      if (ids.length >= limit) break;
      ids.push(id);
    }
    for (const id of ids) {
      const [h0, h1] = this.index.hashOf(id);
      const loc = this.index.location(id);
      try {
        const decoded = decodeRecord(await this.packs.read(loc.pack, loc.offset, loc.length));
        yield metaOf(decoded);
      } catch {
        this.dropIfAt(h0, h1, loc);
      }
    }
  }

  /** Removes every entry. */
  async clear(): Promise<number> {
    if (!(await this.usable())) return 0;
    await this.settle();
    const n = this.index.count;
    for (const id of [...this.index.oldestFirst()]) {
      const [h0, h1] = this.index.hashOf(id);
      this.removeId(id, h0, h1);
    }
    await this.upkeep!.checkpoint();
    return n;
  }

  private afterWrite(): void {
    this.upkeep!.afterWrite();
  }

  private flushTouches(): void {
    if (!this.closed && this.loaded) this.journal.flushTouches();
  }

  /** Waits for the index; false if it could not be loaded (the store is then closed). */
  private async usable(): Promise<boolean> {
    if (this.loading) await this.loading.catch(() => {});
    return this.packs !== undefined;
  }

  private track<T>(p: Promise<T>): void {
    const guarded = p.catch(() => {});
    this.pending.add(guarded);
    void guarded.then(() => this.pending.delete(guarded));
  }

  /** Resolves once background work (migration, compaction, sweeping) has nothing left to do. */
  async whenIdle(): Promise<void> {
    for (;;) {
      await this.settle();
      await new Promise((r) => setImmediate(r));
      if (this.pending.size === 0 && (this.upkeep?.idle ?? true)) return;
    }
  }

  /** Resolves once the writes and removals under way are done. */
  async settled(): Promise<void> {
    await this.settle();
  }

  private async settle(): Promise<void> {
    while (this.pending.size) await Promise.all([...this.pending]);
  }

  /** Stops background work, writes a snapshot (so the next start replays nothing) and closes the files. */
  async close(): Promise<void> {
    await this.usable();
    if (this.closed) return;
    this.migration?.stop();
    clearInterval(this.touchTimer);
    const upkeep = this.upkeep!;
    upkeep.stop();
    await this.settle();
    await upkeep.checkpoint();
    this.closed = true;
    this.journal.close();
    this.packs.close();
    unlockStore(this.storeDir);
  }
}

export { INLINE_MAX };
