import type * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import { LRUCache } from 'lru-cache';

/** Body files remembered as verified; beyond this many, the least recently used are checked again. */
const REMEMBERED = 10_000;
/** File times tick coarsely: a write within this of the last change might keep the ctime. */
const RACY_WINDOW_NS = 1_000_000_000n;

interface Identity {
  digest: string;
  ino: bigint;
  size: bigint;
  ctimeNs: bigint;
  verifiedAtNs: bigint;
}

/**
 * Body files whose digest matched, with their identity at that moment. Any write to a file (a
 * bit flip, a truncation, a replacement) changes its inode or ctime, which no user process can
 * set back, so an unchanged identity means an unchanged body: a large hit is streamed without
 * reading it through first.
 */
export class VerifiedFiles {
  private readonly known = new LRUCache<string, Identity>({ max: REMEMBERED });

  remember(file: string, digest: string, stat: fs.BigIntStats, verifiedAtNs = BigInt(Date.now()) * 1_000_000n): void {
    this.known.set(file, { digest, ino: stat.ino, size: stat.size, ctimeNs: stat.ctimeNs, verifiedAtNs });
  }

  /**
   * A file just written from bytes whose digest was computed as they went: verified as of its
   * rename. Only a write by someone else within the same clock tick could go unnoticed.
   */
  async rememberWritten(file: string, digest: string): Promise<void> {
    const stat = await fsp.stat(file, { bigint: true }).catch(() => null);
    if (stat) this.remember(file, digest, stat, stat.ctimeNs + RACY_WINDOW_NS);
  }

  unchanged(file: string, digest: string, stat: fs.BigIntStats): boolean {
    const k = this.known.get(file);
    return (
      k !== undefined &&
      k.digest === digest &&
      k.ino === stat.ino &&
      k.size === stat.size &&
      k.ctimeNs === stat.ctimeNs &&
      // Trust it only when verified well after that change (git's "racy clean" rule).
      k.ctimeNs + RACY_WINDOW_NS <= k.verifiedAtNs
    );
  }
}
