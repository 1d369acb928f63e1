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
    // The pack id's low 16 bits at 2, its high 8 at 1 (0 in records written before pack ids passed 65,535).
    buf[pos + 1] = loc.pack >>> 16;
    buf.writeUInt16LE(loc.pack & 0xffff, pos + 2);
    buf.writeUInt32LE(loc.offset, pos + 12);
    buf.writeUInt32LE(loc.length, pos + 16);
    buf.writeDoubleLE(loc.bytes, pos + 20);
  }
  buf.writeUInt32LE(crc32!(buf.subarray(pos, pos + 28)), pos + 28);
}

function packAt(buf: Buffer, pos: number): number {
  return buf.readUInt16LE(pos + 2) | (buf[pos + 1] << 16);
}

/** Journal records replayed (or snapshot rows indexed) between two yields of a start-up in the background. */
const SLICE_RECORDS = 65_536;

/** Applies records buf[start, end) to the index; returns where the whole, valid records end (short of `end` at the first bad one). */
function replay(index: KeyIndex, buf: Buffer, start: number, end: number, checkEach: boolean): number {
  let pos = start;
  for (; pos + RECORD_SIZE <= end; pos += RECORD_SIZE) {
    if (checkEach && buf.readUInt32LE(pos + 28) !== crc32!(buf.subarray(pos, pos + 28))) break;
    const op = buf[pos];
    const h0 = buf.readUInt32LE(pos + 4);
    const h1 = buf.readUInt32LE(pos + 8);
    if (op === Op.Put || op === Op.PutOldest) {
      index.set(h0, h1, { pack: packAt(buf, pos), offset: buf.readUInt32LE(pos + 12), length: buf.readUInt32LE(pos + 16), bytes: buf.readDoubleLE(pos + 20) }, op === Op.PutOldest);
    } else if (op === Op.Delete || op === Op.Touch || op === Op.Move) {
      const id = index.find(h0, h1);
      if (id < 0) continue;
      if (op === Op.Delete) index.remove(id);
      else if (op === Op.Touch) index.touch(id);
      else index.relocate(id, { pack: packAt(buf, pos), offset: buf.readUInt32LE(pos + 12), length: buf.readUInt32LE(pos + 16), bytes: buf.readDoubleLE(pos + 20) });
    } else break;
  }
  return pos;
}

/**
 * What reading the index asks of whoever drives it (see readIndex): a file's bytes (null if it
 * does not exist), or a pause between two slices of work.
 */
type ReadStep = { read: string } | { pause: true };

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
  /**
   * Touches wait here and are written together (see flushTouches): a hit costs no write of its
   * own. A flag per entry id (1: used since the last flush) and their count, not a Set: adding
   * to a Set of tens of thousands of ids a second, rebuilt after every flush, cost each hit a
   * hash-table insert in scattered memory and its growth.
   */
  private touchFlags = new Uint8Array(0);
  private touchCount = 0;
  private touchIndex: KeyIndex | null = null;

  private constructor(private readonly dir: string) {}

  /** The index as the files hold it now, changing nothing (for tools and tests; a running store may be appending). */
  static inspect(dir: string): KeyIndex {
    return readNow(dir, false).index;
  }

  /**
   * Reads the snapshot and replays the journals after it, reading files asynchronously and
   * yielding to the event loop every SLICE_RECORDS records, so a proxy that is already
   * listening keeps serving meanwhile; leaves a journal open for appending.
   */
  static async load(dir: string): Promise<{ journal: IndexJournal; loaded: LoadedIndex }> {
    const steps = readIndex(dir, true);
    let step = steps.next(null);
    while (!step.done) {
      const want: ReadStep = step.value;
      let answer: Buffer | null = null;
      if ('read' in want) answer = await fs.promises.readFile(want.read).catch(() => null);
      else await new Promise((resolve) => setImmediate(resolve));
      step = steps.next(answer);
    }
    return IndexJournal.opened(dir, step.value);
  }

  /** load(), all at once (tools and tests). */
  static loadNow(dir: string): { journal: IndexJournal; loaded: LoadedIndex } {
    return IndexJournal.opened(dir, readNow(dir, true));
  }

  private static opened(dir: string, read: ReadIndex): { journal: IndexJournal; loaded: LoadedIndex } {
    const { index, fromSnapshot, snapshotDamaged, journalRecords, snapshotGen, gens } = read;
    const journal = new IndexJournal(dir);
    journal.generation = Math.max(snapshotGen, gens.length ? gens[gens.length - 1] : 0);
    journal.records = journalRecords;
    journal.fd = fs.openSync(path.join(dir, JOURNAL_PREFIX + journal.generation), 'a', FILE_MODE);
    return { journal, loaded: { index, fromSnapshot, snapshotDamaged, journalRecords } };
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
    let flags = this.touchFlags;
    if (id >= flags.length) {
      flags = new Uint8Array(Math.max(id + 1, flags.length * 2, 1024));
      flags.set(this.touchFlags);
      this.touchFlags = flags;
    }
    if (flags[id] === 0) {
      flags[id] = 1;
      this.touchCount++;
    }
  }

  /** Writes the remembered uses in LRU order (a crash loses at most the uses since the last flush). */
  flushTouches(): void {
    const index = this.touchIndex;
    if (!index || this.touchCount === 0) return;
    const flags = this.touchFlags;
    let left = this.touchCount;
    this.touchCount = 0;
    const buf = Buffer.allocUnsafe(left * RECORD_SIZE);
    let pos = 0;
    // In the order the index now holds them, so a replay rebuilds the same order.
    for (const id of index.newestFirst()) {
      if (flags[id] !== 1) continue;
      flags[id] = 0;
      pos += RECORD_SIZE;
      const [h0, h1] = index.hashOf(id);
      encodeRecord(buf, buf.length - pos, Op.Touch, h0, h1, null);
      if (--left === 0) break;
    }
    // Flags of ids no longer in the list (none: removal forgets them) would be stale: clear them.
    if (left !== 0) flags.fill(0);
    if (pos === 0) return;
    fs.writeSync(this.fd, buf, buf.length - pos, pos);
    this.records += pos / RECORD_SIZE;
  }

  /** Forgets a pending touch of an entry id that is being reused for another entry. */
  forget(id: number): void {
    if (id < this.touchFlags.length && this.touchFlags[id] === 1) {
      this.touchFlags[id] = 0;
      this.touchCount--;
    }
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

type ReadIndex = LoadedIndex & { snapshotGen: number; gens: number[] };

/** readIndex driven synchronously. */
function readNow(dir: string, repair: boolean): ReadIndex {
  const steps = readIndex(dir, repair);
  let step = steps.next(null);
  while (!step.done) {
    let answer: Buffer | null = null;
    if ('read' in step.value) {
      try {
        answer = fs.readFileSync(step.value.read);
      } catch {
        answer = null;
      }
    }
    step = steps.next(answer);
  }
  return step.value;
}

/**
 * The index as the snapshot and the journals after it say, one slice at a time: the caller
 * reads the files it asks for and decides how to pause (IndexJournal.load in the background,
 * readNow at once). `repair`: deletes journals the snapshot holds and cuts torn tails, so
 * appends follow whole records.
 */
function* readIndex(dir: string, repair: boolean): Generator<ReadStep, ReadIndex, Buffer | null> {
  let index = new KeyIndex();
  let snapshotGen = 0;
  let fromSnapshot = false;
  let snapshotDamaged = false;
  const buf = yield { read: path.join(dir, SNAPSHOT_FILE) };
  if (buf) {
    const count = buf.length >= SNAPSHOT_HEADER ? buf.readUInt32LE(12) : -1;
    const valid =
      buf.length >= SNAPSHOT_HEADER &&
      buf.readUInt32LE(0) === SNAPSHOT_MAGIC &&
      buf.length === SNAPSHOT_HEADER + count * RECORD_SIZE &&
      buf.readUInt32LE(16) === crc32!(buf.subarray(SNAPSHOT_HEADER));
    if (valid) {
      snapshotGen = buf.readUInt32LE(8);
      index = new KeyIndex(count + 1024);
      const rows = buf.subarray(SNAPSHOT_HEADER);
      for (let from = 0; from < count; from += SLICE_RECORDS) {
        if (from > 0) yield { pause: true };
        index.appendRows(rows, from, Math.min(count, from + SLICE_RECORDS));
      }
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
    const data = (yield { read: file }) ?? Buffer.alloc(0);
    let whole = 0;
    for (;;) {
      const end = Math.min(data.length - (data.length % RECORD_SIZE), whole + SLICE_RECORDS * RECORD_SIZE);
      const reached = replay(index, data, whole, end, true);
      whole = reached;
      if (reached < end || end >= data.length - (data.length % RECORD_SIZE)) break;
      yield { pause: true };
    }
    journalRecords += whole / RECORD_SIZE;
    // A torn or damaged tail is cut off, or records appended after it would never be replayed.
    if (repair && whole !== data.length) fs.truncateSync(file, whole);
  }
  return { index, fromSnapshot, snapshotDamaged, journalRecords, snapshotGen, gens };
}
