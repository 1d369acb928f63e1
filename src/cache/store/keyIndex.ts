import * as crypto from 'node:crypto';

/**
 * The store's whole in-memory index: for every entry, where its record lives, how many bytes it
 * accounts for, and its place in least-recently-used order. Typed arrays, about 44 bytes an
 * entry (a million entries: 44 MB), where a Map of objects would cost over a kilobyte each.
 *
 * Entries are named by the first 64 bits of the SHA-256 of their cache key (two uint32 halves):
 * two keys sharing them among a million entries is a one-in-thirty-million chance, and the
 * record itself carries the full hash and key, checked on every read, so a clash is a miss,
 * never a wrong answer. Lookups go through an open-addressing table (linear probing, deletion
 * by backward shift, so no tombstones build up); LRU order is a doubly linked list threaded
 * through two Int32Arrays.
 */

export interface Location {
  pack: number;
  offset: number;
  length: number;
  /** Bytes the entry accounts for on disk: its record, plus its body file if the body is not inline. */
  bytes: number;
}

const NONE = -1;
const INITIAL_CAPACITY = 1024;

export class KeyIndex {
  private capacity = 0;
  private h0 = new Uint32Array(0);
  private h1 = new Uint32Array(0);
  /** Pack ids: up to 24 bits (journal.ts), so a Uint32Array; 16 bits ran out after 65,536 packs written. */
  private packs = new Uint32Array(0);
  private offsets = new Uint32Array(0);
  private lengths = new Uint32Array(0);
  private sizes = new Float64Array(0);
  private prev = new Int32Array(0);
  private next = new Int32Array(0);
  /**
   * Per id, a number given when the id is taken for an entry (0 while free): with the id, it
   * names that entry for as long as it stays in the index (see stampOf), so a caller that kept
   * both finds it again without hashing or probing.
   */
  private stamps = new Uint32Array(0);
  private nextStamp = 1;
  /** Slot -> entry id + 1 (0: empty). Length a power of two, at most half full. */
  private table = new Int32Array(0);
  private mask = 0;
  private freeIds: number[] = [];
  private highWater = 0;
  private head = NONE;
  private tail = NONE;
  count = 0;
  totalBytes = 0;

  constructor(capacity = INITIAL_CAPACITY) {
    this.grow(Math.max(16, capacity));
  }

  /**
   * Appends snapshot rows [from, to) (see journal.ts: 32-byte records, least recently used
   * first, each hash once) to an index that holds rows [0, from) of the same snapshot, straight
   * into the arrays: a million rows in a fraction of what as many set() calls take. The index
   * grows if it was not made with room for them.
   */
  appendRows(rows: Buffer, from: number, to: number): void {
    if (to > this.capacity) this.grow(Math.max(to, this.capacity * 2));
    // Locals and a word view: property loads and Buffer reads per row cost more than the rest together.
    const slice = rows.subarray(from * 32, to * 32);
    const aligned = slice.byteOffset % 8 === 0 ? slice : Buffer.from(slice);
    const words = new Uint32Array(aligned.buffer, aligned.byteOffset, (to - from) * 8);
    const { packs, h0, h1, offsets, lengths, sizes, prev, next, stamps, table, mask } = this;
    let total = 0;
    for (let id = from, w = 0; id < to; id++, w += 8) {
      packs[id] = (words[w] >>> 16) | (((words[w] >>> 8) & 0xff) << 16);
      const a = words[w + 1];
      h0[id] = a;
      h1[id] = words[w + 2];
      offsets[id] = words[w + 3];
      lengths[id] = words[w + 4];
      const bytes = aligned.readDoubleLE(w * 4 + 20);
      sizes[id] = bytes;
      total += bytes;
      prev[id] = id - 1;
      next[id] = id + 1 < to ? id + 1 : NONE;
      stamps[id] = this.takeStamp();
      let slot = a & mask;
      while (table[slot] !== 0) slot = (slot + 1) & mask;
      table[slot] = id + 1;
    }
    if (to > from) {
      if (from > 0) this.next[from - 1] = from;
      this.head = 0;
      this.tail = to - 1;
    }
    this.totalBytes += total;
    this.count = to;
    this.highWater = to;
  }

  /** The entry id for a hash, or -1. */
  find(h0: number, h1: number): number {
    let slot = h0 & this.mask;
    for (;;) {
      const v = this.table[slot];
      if (v === 0) return NONE;
      const id = v - 1;
      if (this.h0[id] === h0 && this.h1[id] === h1) return id;
      slot = (slot + 1) & this.mask;
    }
  }

  /**
   * Adds or replaces the entry for a hash and makes it the most recently used (or, `asOldest`,
   * the least: an entry migrated from an old cache). Returns the replaced location, if any.
   */
  set(h0: number, h1: number, loc: Location, asOldest = false): Location | null {
    const existing = this.find(h0, h1);
    if (existing !== NONE) {
      const old = this.location(existing);
      this.write(existing, loc);
      this.totalBytes += loc.bytes - old.bytes;
      this.unlink(existing);
      if (asOldest) this.linkHead(existing);
      else this.linkTail(existing);
      return old;
    }
    if (this.count + 1 > this.capacity) this.grow(this.capacity * 2);
    const id = this.freeIds.length ? this.freeIds.pop()! : this.highWater++;
    this.h0[id] = h0;
    this.h1[id] = h1;
    this.stamps[id] = this.takeStamp();
    this.write(id, loc);
    this.insertSlot(id);
    if (asOldest) this.linkHead(id);
    else this.linkTail(id);
    this.count++;
    this.totalBytes += loc.bytes;
    return null;
  }

  /** Moves an entry's record (compaction) without changing its place in LRU order. */
  relocate(id: number, loc: Location): void {
    const old = this.sizes[id];
    this.write(id, loc);
    this.totalBytes += loc.bytes - old;
  }

  remove(id: number): Location {
    const loc = this.location(id);
    this.deleteSlot(id);
    this.unlink(id);
    this.stamps[id] = 0;
    this.freeIds.push(id);
    this.count--;
    this.totalBytes -= loc.bytes;
    return loc;
  }

  touch(id: number): void {
    if (this.tail === id) return;
    this.unlink(id);
    this.linkTail(id);
  }

  /** The stamp of an id in the index (0: free): an id and its stamp name one entry while it stays. */
  stampOf(id: number): number {
    return id < this.capacity ? this.stamps[id] : 0;
  }

  location(id: number): Location {
    return { pack: this.packs[id], offset: this.offsets[id], length: this.lengths[id], bytes: this.sizes[id] };
  }

  hashOf(id: number): [number, number] {
    return [this.h0[id], this.h1[id]];
  }

  packOf(id: number): number {
    return this.packs[id];
  }

  /** Each pack's bytes of records the index points at. */
  recordBytesByPack(): Map<number, number> {
    const out = new Map<number, number>();
    for (let id = this.head; id !== NONE; id = this.next[id]) {
      const pack = this.packs[id];
      out.set(pack, (out.get(pack) ?? 0) + this.lengths[id]);
    }
    return out;
  }

  /** The least recently used entry, or -1 when empty. */
  oldest(): number {
    return this.head;
  }

  /** Entries from least to most recently used. Removing the current entry while iterating is safe. */
  *oldestFirst(): Generator<number> {
    let id = this.head;
    while (id !== NONE) {
      const following = this.next[id];
      yield id;
      id = following;
    }
  }

  /** Entries from most to least recently used. */
  *newestFirst(): Generator<number> {
    let id = this.tail;
    while (id !== NONE) {
      const preceding = this.prev[id];
      yield id;
      id = preceding;
    }
  }

  clear(): void {
    this.table.fill(0);
    this.stamps.fill(0);
    this.freeIds = [];
    this.highWater = 0;
    this.head = this.tail = NONE;
    this.count = 0;
    this.totalBytes = 0;
  }

  /** A new stamp, never 0, within 30 bits (small integers for whoever keeps it). */
  private takeStamp(): number {
    const stamp = this.nextStamp;
    this.nextStamp = stamp >= 0x3fffffff ? 1 : stamp + 1;
    return stamp;
  }

  private write(id: number, loc: Location): void {
    this.packs[id] = loc.pack;
    this.offsets[id] = loc.offset;
    this.lengths[id] = loc.length;
    this.sizes[id] = loc.bytes;
  }

  private linkTail(id: number): void {
    this.prev[id] = this.tail;
    this.next[id] = NONE;
    if (this.tail !== NONE) this.next[this.tail] = id;
    else this.head = id;
    this.tail = id;
  }

  private linkHead(id: number): void {
    this.next[id] = this.head;
    this.prev[id] = NONE;
    if (this.head !== NONE) this.prev[this.head] = id;
    else this.tail = id;
    this.head = id;
  }

  private unlink(id: number): void {
    const p = this.prev[id];
    const n = this.next[id];
    if (p !== NONE) this.next[p] = n;
    else this.head = n;
    if (n !== NONE) this.prev[n] = p;
    else this.tail = p;
  }

  private insertSlot(id: number): void {
    let slot = this.h0[id] & this.mask;
    while (this.table[slot] !== 0) slot = (slot + 1) & this.mask;
    this.table[slot] = id + 1;
  }

  /** Backward-shift deletion: later entries of the probe run move up, so lookups never need tombstones. */
  private deleteSlot(id: number): void {
    const mask = this.mask;
    let slot = this.h0[id] & mask;
    while (this.table[slot] !== id + 1) slot = (slot + 1) & mask;
    let hole = slot;
    let probe = (hole + 1) & mask;
    for (;;) {
      const v = this.table[probe];
      if (v === 0) break;
      const home = this.h0[v - 1] & mask;
      // Movable into the hole unless its home lies cyclically in (hole, probe].
      const inRange = hole <= probe ? home > hole && home <= probe : home > hole || home <= probe;
      if (!inRange) {
        this.table[hole] = v;
        hole = probe;
      }
      probe = (probe + 1) & mask;
    }
    this.table[hole] = 0;
  }

  private grow(capacity: number): void {
    const copy = <T extends Uint32Array | Float64Array | Int32Array>(from: T, make: (n: number) => T): T => {
      const to = make(capacity);
      to.set(from.subarray(0, Math.min(from.length, capacity)) as never);
      return to;
    };
    this.h0 = copy(this.h0, (n) => new Uint32Array(n));
    this.h1 = copy(this.h1, (n) => new Uint32Array(n));
    this.packs = copy(this.packs, (n) => new Uint32Array(n));
    this.offsets = copy(this.offsets, (n) => new Uint32Array(n));
    this.lengths = copy(this.lengths, (n) => new Uint32Array(n));
    this.sizes = copy(this.sizes, (n) => new Float64Array(n));
    this.prev = copy(this.prev, (n) => new Int32Array(n));
    this.next = copy(this.next, (n) => new Int32Array(n));
    this.stamps = copy(this.stamps, (n) => new Uint32Array(n));
    this.capacity = capacity;
    let slots = 16;
    while (slots < capacity * 2) slots *= 2;
    this.table = new Int32Array(slots);
    this.mask = slots - 1;
    for (const id of this.oldestFirst()) this.insertSlot(id);
  }
}

/** The index's name for a key's SHA-256 (hex): its first 64 bits as two uint32. */
export function hashHalves(hashHex: string): [number, number] {
  return [parseInt(hashHex.slice(0, 8), 16), parseInt(hashHex.slice(8, 16), 16)];
}

let lastKey: string | null = null;
let lastHash = '';

/**
 * crypto.hash (Node 20.12, 21.7): one call, no Hash object; half the time of createHash for a
 * key (0.8 against 1.7-2.1 us), once per cold hit. Absent from older runtimes (Electron's too).
 */
const oneShotHash = (crypto as { hash?: (algorithm: string, data: string, encoding: 'hex') => string }).hash;

/**
 * The SHA-256 of a cache key (hex): the name the store and the old layout find an entry by.
 * The last one is remembered: a request for a URL that is not in memory asks for its key's hash
 * two or three times in a row (the disk lookup, then whether any variant is stored), and the
 * hash was 6% of a quick pass-through's CPU.
 */
export function hashKey(key: string): string {
  if (key !== lastKey) {
    lastHash = oneShotHash ? oneShotHash('sha256', key, 'hex') : crypto.createHash('sha256').update(key).digest('hex');
    lastKey = key;
  }
  return lastHash;
}
