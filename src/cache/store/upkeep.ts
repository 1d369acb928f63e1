import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import type { BodyFiles } from './bodyFiles';
import { type IndexJournal, Op } from './journal';
import type { KeyIndex, Location } from './keyIndex';
import { decodeRecord, type Packs } from './packs';

/** A checkpoint is due once the journal holds this many records and a quarter of the entry count. */
const CHECKPOINT_MIN_RECORDS = 200_000;

/** What the store lends its upkeep: its parts once the index is in, and three of its duties. */
export interface UpkeepHost {
  readonly index: KeyIndex;
  readonly journal: IndexJournal;
  readonly packs: Packs;
  readonly bodies: BodyFiles;
  isClosed(): boolean;
  /** Keeps a promise among the work the store waits for on close (its rejection ignored). */
  track(work: Promise<unknown>): void;
  /** Removes the entry for this hash if its record is still at loc (a damaged or lost one). */
  dropIfAt(h0: number, h1: number, loc: Location): void;
}

/**
 * The disk store's background work, apart from serving: checkpoints (a new index snapshot, so
 * the journal a start replays stays short), compaction of packs mostly garbage (live records
 * copied forward, the pack deleted) and, after a crash, the sweep of body files no record names.
 */
export class StoreUpkeep {
  private checkpointing: Promise<void> | null = null;
  private compacting = false;
  private stopped = false;

  constructor(private readonly host: UpkeepHost) {}

  /** No compaction running or due. */
  get idle(): boolean {
    return !this.compacting && (this.stopped || this.host.isClosed() || this.host.packs.compactionCandidate() < 0);
  }

  /** No new compaction from now on (the store is closing). */
  stop(): void {
    this.stopped = true;
  }

  /** After each write or removal: a checkpoint if the journal has grown long, a compaction if one is due. */
  afterWrite(): void {
    const { journal, index } = this.host;
    if (!this.checkpointing && journal.pending > Math.max(CHECKPOINT_MIN_RECORDS, index.count / 4)) {
      this.host.track(this.checkpoint());
    }
    this.maybeCompact();
  }

  /** Writes a snapshot of the index (one at a time) and starts a new journal. */
  async checkpoint(): Promise<void> {
    while (this.checkpointing) await this.checkpointing;
    const run = this.host.journal.checkpoint(this.host.index);
    this.checkpointing = run;
    try {
      await run;
    } finally {
      this.checkpointing = null;
    }
  }

  /** Compacts one pack at a time, in the background, while a sealed pack is more garbage than live records. */
  maybeCompact(): void {
    if (this.compacting || this.stopped || this.host.isClosed()) return;
    const pack = this.host.packs.compactionCandidate();
    if (pack < 0) return;
    this.compacting = true;
    this.host.track(
      this.compact(pack)
        .catch(() => {})
        .finally(() => {
          this.compacting = false;
          // More to do? Another turn, so requests are served in between.
          setImmediate(() => this.maybeCompact());
        }),
    );
  }

  private async compact(pack: number): Promise<void> {
    const { index, packs, bodies } = this.host;
    const moving: Array<{ h0: number; h1: number; loc: Location }> = [];
    for (const id of index.oldestFirst()) {
      if (index.packOf(id) !== pack) continue;
      const [h0, h1] = index.hashOf(id);
      moving.push({ h0, h1, loc: index.location(id) });
    }
    for (const { h0, h1, loc } of moving) {
      if (this.host.isClosed()) return;
      let record: Buffer;
      try {
        record = await packs.read(loc.pack, loc.offset, loc.length);
        decodeRecord(record);
      } catch {
        this.host.dropIfAt(h0, h1, loc);
        continue;
      }
      await this.moveRecord(h0, h1, loc, packs.reserve(record.length), record);
    }
    // The pack is deleted only once the index no longer names it; a checkpoint first, so no journal replays a record into it.
    await this.checkpoint();
    await packs.deletePack(pack);
    await bodies.removePack(pack);
  }

  private async moveRecord(h0: number, h1: number, loc: Location, to: { pack: number; offset: number }, record: Buffer): Promise<void> {
    const { index, packs, bodies, journal } = this.host;
    const hasFile = loc.bytes !== loc.length;
    if (hasFile) {
      await bodies.ensureDir(to.pack);
      try {
        await fsp.link(bodies.pathOf(loc), bodies.pathOf(to));
      } catch {
        this.host.dropIfAt(h0, h1, loc);
        return;
      }
    }
    await packs.write(to, record);
    const id = index.find(h0, h1);
    const now = id >= 0 ? index.location(id) : null;
    if (!now || now.pack !== loc.pack || now.offset !== loc.offset || this.host.isClosed()) {
      // Replaced or removed meanwhile: the copy is garbage.
      if (hasFile) await fsp.unlink(bodies.pathOf(to)).catch(() => {});
      return;
    }
    const moved: Location = { ...to, length: record.length, bytes: loc.bytes };
    journal.append(Op.Move, h0, h1, moved);
    index.relocate(id, moved);
    packs.removeLive(loc.pack, loc.length);
    packs.addLive(moved.pack, moved.length);
    if (hasFile) await fsp.unlink(bodies.pathOf(loc)).catch(() => {});
  }

  /**
   * After a crash: body files whose record never made it into the index (killed between the
   * two) are removed. New records go to a pack started at open, so in the packs before it no
   * body file appears any more: what the index does not name there is an orphan.
   */
  async sweepOrphanBodies(): Promise<void> {
    const { index, packs, bodies } = this.host;
    const firstNew = packs.activePack;
    const live = new Set<string>();
    for (const id of index.oldestFirst()) {
      const loc = index.location(id);
      if (loc.bytes !== loc.length) live.add(`${loc.pack}/${loc.offset.toString(36)}`);
    }
    let dirs: string[];
    try {
      dirs = await fsp.readdir(bodies.dir);
    } catch {
      return;
    }
    for (const d of dirs) {
      const pack = Number(d);
      if (!(pack < firstNew)) continue;
      if (!packs.has(pack)) {
        // Bodies of a compacted pack whose directory a crash left behind.
        await fsp.rm(path.join(bodies.dir, d), { recursive: true, force: true });
        continue;
      }
      let names: string[];
      try {
        names = await fsp.readdir(path.join(bodies.dir, d));
      } catch {
        continue;
      }
      for (const name of names) {
        if (this.host.isClosed()) return;
        if (!live.has(`${d}/${name}`)) await fsp.unlink(path.join(bodies.dir, d, name)).catch(() => {});
      }
    }
  }
}
