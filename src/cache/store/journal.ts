import * as fs from 'node:fs';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import { KeyIndex, type Location } from './keyIndex';

/**
 * The index on disk: a snapshot (every entry, least recently used first) plus journals of what
 * changed since, each change one fixed 32-byte record with its own CRC-32. Start-up reads the
 * snapshot and replays the journals: a few tens of MB for a million entries, and no scan of
 * the store, after a clean stop and after a SIGKILL alike (a journal record is written with
 * one write() before the change it records is reported done, and the page cache keeps it
 * whatever happens to the process). A torn last record is cut off.
 *
 * Journals are numbered. A snapshot of generation G holds everything journals numbered below G
 * recorded, so a checkpoint is: start journal G, write the snapshot of generation G beside it
 * (temp file + rename), then delete the older journals. A crash at any point leaves either the
 * old snapshot and every journal since, or the new one and journal G.
 */

export const enum Op {
  Put = 1,
  Delete = 2,
  Touch = 3,
  /** A record moved by compaction: same entry, same place in LRU order. */
  Move = 4,
  /** Put, as the least recently used entry (migration). */
  PutOldest = 5,
}

export const RECORD_SIZE = 32;
const SNAPSHOT_MAGIC = 0x43505853; // "CPXS"
const SNAPSHOT_HEADER = 24;
const SNAPSHOT_FILE = 'index.snap';
const JOURNAL_PREFIX = 'journal.';
const FILE_MODE = 0o600;

type Crc32 = (data: Uint8Array, value?: number) => number;
const crc32 = (zlib as unknown as { crc32?: Crc32 }).crc32;
if (!crc32) throw new Error('the cache store needs zlib.crc32 (Node 20.15 or newer)');

/** Writes one journal record into buf at pos. */
export function encodeRecord(buf: Buffer, pos: number, op: Op, h0: number, h1: number, loc: Location | null): void {
  buf.fill(0, pos, pos + RECORD_SIZE);
  buf[pos] = op;
  buf.writeUInt32LE(h0, pos + 4);
  buf.writeUInt32LE(h1, pos + 8);
  if (loc) {
    buf.writeUInt16LE(loc.pack, pos + 2);
    buf.writeUInt32LE(loc.offset, pos + 12);
    buf.writeUInt32LE(loc.length, pos + 16);
    buf.writeDoubleLE(loc.bytes, pos + 20);
  }
  buf.writeUInt32LE(crc32!(buf.subarray(pos, pos + 28)), pos + 28);
}

/** Applies records to the index; returns how many bytes of buf were whole, valid records. */
function replay(index: KeyIndex, buf: Buffer, start: number, checkEach: boolean): number {
  let pos = start;
  for (; pos + RECORD_SIZE <= buf.length; pos += RECORD_SIZE) {
    if (checkEach && buf.readUInt32LE(pos + 28) !== crc32!(buf.subarray(pos, pos + 28))) break;
    const op = buf[pos];
    const h0 = buf.readUInt32LE(pos + 4);
    const h1 = buf.readUInt32LE(pos + 8);
    if (op === Op.Put || op === Op.PutOldest) {
      index.set(h0, h1, { pack: buf.readUInt16LE(pos + 2), offset: buf.readUInt32LE(pos + 12), length: buf.readUInt32LE(pos + 16), bytes: buf.readDoubleLE(pos + 20) }, op === Op.PutOldest);
    } else if (op === Op.Delete || op === Op.Touch || op === Op.Move) {
      const id = index.find(h0, h1);
      if (id < 0) continue;
      if (op === Op.Delete) index.remove(id);
      else if (op === Op.Touch) index.touch(id);
      else index.relocate(id, { pack: buf.readUInt16LE(pos + 2), offset: buf.readUInt32LE(pos + 12), length: buf.readUInt32LE(pos + 16), bytes: buf.readDoubleLE(pos + 20) });
    } else break;
  }
  return pos;
}

export interface LoadedIndex {
  index: KeyIndex;
  /** Whether a snapshot was read (false: a new store, or one whose snapshot was unreadable). */
  fromSnapshot: boolean;
  snapshotDamaged: boolean;
  journalRecords: number;
}

function journalGenerations(dir: string): number[] {
  return fs
    .readdirSync(dir)
    .filter((n) => n.startsWith(JOURNAL_PREFIX) && /^\d+$/.test(n.slice(JOURNAL_PREFIX.length)))
    .map((n) => Number(n.slice(JOURNAL_PREFIX.length)))
    .sort((a, b) => a - b);
}

export class IndexJournal {
  private fd = -1;
  private generation = 0;
  private records = 0;
  /** Touches wait here and are written together (see flushTouches): a hit costs no write of its own. */
  private touches = new Set<number>();
  private touchIndex: KeyIndex | null = null;

  private constructor(private readonly dir: string) {}

  /** The index as the files hold it now, changing nothing (for tools and tests; a running store may be appending). */
  static inspect(dir: string): KeyIndex {
    return IndexJournal.read(dir, false).index;
  }

  /** Reads the snapshot and replays the journals after it; leaves a journal open for appending. */
  static load(dir: string): { journal: IndexJournal; loaded: LoadedIndex } {
    const { index, fromSnapshot, snapshotDamaged, journalRecords, snapshotGen, gens } = IndexJournal.read(dir, true);
    const journal = new IndexJournal(dir);
    journal.generation = Math.max(snapshotGen, gens.length ? gens[gens.length - 1] : 0);
    journal.records = journalRecords;
    journal.fd = fs.openSync(path.join(dir, JOURNAL_PREFIX + journal.generation), 'a', FILE_MODE);
    return { journal, loaded: { index, fromSnapshot, snapshotDamaged, journalRecords } };
  }

  /** `repair`: deletes journals the snapshot holds and cuts torn tails, so appends follow whole records. */
  private static read(dir: string, repair: boolean): LoadedIndex & { snapshotGen: number; gens: number[] } {
    let index = new KeyIndex();
    let snapshotGen = 0;
    let fromSnapshot = false;
    let snapshotDamaged = false;
    let buf: Buffer | null = null;
    try {
      buf = fs.readFileSync(path.join(dir, SNAPSHOT_FILE));
    } catch {
      buf = null;
    }
    if (buf) {
      const count = buf.length >= SNAPSHOT_HEADER ? buf.readUInt32LE(12) : -1;
      const valid =
        buf.length >= SNAPSHOT_HEADER &&
        buf.readUInt32LE(0) === SNAPSHOT_MAGIC &&
        buf.length === SNAPSHOT_HEADER + count * RECORD_SIZE &&
        buf.readUInt32LE(16) === crc32!(buf.subarray(SNAPSHOT_HEADER));
      if (valid) {
        snapshotGen = buf.readUInt32LE(8);
        index = KeyIndex.fromRows(buf.subarray(SNAPSHOT_HEADER), count);
        fromSnapshot = true;
      } else snapshotDamaged = true;
    }
    const gens = journalGenerations(dir);
    let journalRecords = 0;
    for (const gen of gens) {
      const file = path.join(dir, JOURNAL_PREFIX + gen);
      if (gen < snapshotGen) {
        if (repair) fs.rmSync(file, { force: true });
        continue;
      }
      const data = fs.readFileSync(file);
      const whole = replay(index, data, 0, true);
      journalRecords += whole / RECORD_SIZE;
      // A torn or damaged tail is cut off, or records appended after it would never be replayed.
      if (repair && whole !== data.length) fs.truncateSync(file, whole);
    }
    return { index, fromSnapshot, snapshotDamaged, journalRecords, snapshotGen, gens };
  }

  private journalGenerations(): number[] {
    return journalGenerations(this.dir);
  }

  /** Records since the last snapshot: the replay work of the next start. */
  get pending(): number {
    return this.records;
  }

  /** Appends one change, synchronously: once this returns, a crash of the process cannot lose it. */
  append(op: Op, h0: number, h1: number, loc: Location | null): void {
    const buf = Buffer.allocUnsafe(RECORD_SIZE);
    encodeRecord(buf, 0, op, h0, h1, loc);
    fs.writeSync(this.fd, buf);
    this.records++;
  }

  /** Remembers that an entry was used; written with the next flushTouches. */
  touched(index: KeyIndex, id: number): void {
    this.touchIndex = index;
    this.touches.add(id);
  }

  /** Writes the remembered uses in LRU order (a crash loses at most the uses since the last flush). */
  flushTouches(): void {
    const index = this.touchIndex;
    if (!index || this.touches.size === 0) return;
    const ids = this.touches;
    this.touches = new Set();
    const buf = Buffer.allocUnsafe(ids.size * RECORD_SIZE);
    let pos = 0;
    // In the order the index now holds them, so a replay rebuilds the same order.
    for (const id of index.newestFirst()) {
      if (!ids.has(id)) continue;
      ids.delete(id);
      pos += RECORD_SIZE;
      const [h0, h1] = index.hashOf(id);
      encodeRecord(buf, buf.length - pos, Op.Touch, h0, h1, null);
      if (ids.size === 0) break;
    }
    if (pos === 0) return;
    fs.writeSync(this.fd, buf, buf.length - pos, pos);
    this.records += pos / RECORD_SIZE;
  }

  /** Forgets a pending touch of an entry id that is being reused for another entry. */
  forget(id: number): void {
    this.touches.delete(id);
  }

  /**
   * Writes a snapshot of the index and starts a new journal. The snapshot is built here
   * (synchronously, about 30 ms for a million entries) and written in the background.
   */
  async checkpoint(index: KeyIndex): Promise<void> {
    this.flushTouches();
    const gen = this.generation + 1;
    const buf = Buffer.allocUnsafe(SNAPSHOT_HEADER + index.count * RECORD_SIZE);
    let pos = SNAPSHOT_HEADER;
    for (const id of index.oldestFirst()) {
      const [h0, h1] = index.hashOf(id);
      encodeRecord(buf, pos, Op.Put, h0, h1, index.location(id));
      pos += RECORD_SIZE;
    }
    buf.writeUInt32LE(SNAPSHOT_MAGIC, 0);
    buf.writeUInt32LE(1, 4);
    buf.writeUInt32LE(gen, 8);
    buf.writeUInt32LE(index.count, 12);
    buf.writeUInt32LE(crc32!(buf.subarray(SNAPSHOT_HEADER)), 16);
    buf.writeUInt32LE(0, 20);
    const newFd = fs.openSync(path.join(this.dir, JOURNAL_PREFIX + gen), 'a', FILE_MODE);
    const oldFd = this.fd;
    this.fd = newFd;
    this.generation = gen;
    this.records = 0;
    fs.closeSync(oldFd);
    const tmp = path.join(this.dir, `${SNAPSHOT_FILE}.${process.pid}.tmp`);
    await fs.promises.writeFile(tmp, buf, { mode: FILE_MODE });
    await fs.promises.rename(tmp, path.join(this.dir, SNAPSHOT_FILE));
    for (const old of this.journalGenerations()) if (old < gen) await fs.promises.rm(path.join(this.dir, JOURNAL_PREFIX + old), { force: true });
  }

  close(): void {
    if (this.fd >= 0) fs.closeSync(this.fd);
    this.fd = -1;
  }
}
