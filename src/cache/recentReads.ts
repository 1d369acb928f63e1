/** Slots in the table: a read is remembered until another entry's read lands in its slot. */
const SLOTS = 1 << 16;

/** Eight hex digits of a hash's text from `at`, as a number (no slice, no parseInt: this runs on every cold hit). */
function hexWord(hash: string, at: number): number {
  let value = 0;
  for (let i = at; i < at + 8; i++) {
    const c = hash.charCodeAt(i);
    value = (value << 4) | (c <= 57 ? c - 48 : (c | 32) - 87);
  }
  return value >>> 0;
}

/**
 * Which entries the quick path read from disk lately, so that an entry is kept in the memory
 * tier from its second read, not its first (like TinyLFU's doorkeeper): entries asked for once
 * each (an install fetching each tarball once, a crawl) are answered without pushing out the
 * ones asked for again. Kept from the first read, every cold hit on a million-entry store cost
 * a kept entry, an eviction and their garbage (docs/BENCHMARKS.md, "A million entries →
 * Session 14").
 *
 * A direct-mapped table of 32-bit fingerprints of SHA-256 key hashes: 256 KiB whatever the
 * store's size; a collision (another entry's read in the slot) only means one more read from
 * disk before the entry is kept.
 */
export class RecentReads {
  private readonly fingerprints = new Uint32Array(SLOTS);

  /** Notes a read of the entry with this hash; true if it was read recently too (keep it in memory now). */
  askedAgain(hash: string): boolean {
    const slot = hexWord(hash, 0) & (SLOTS - 1);
    // Never 0, the empty slot's value.
    const fingerprint = (hexWord(hash, 8) | 1) >>> 0;
    if (this.fingerprints[slot] === fingerprint) {
      this.fingerprints[slot] = 0;
      return true;
    }
    this.fingerprints[slot] = fingerprint;
    return false;
  }
}
