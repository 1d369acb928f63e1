import * as fs from 'node:fs';
import { LRUCache } from 'lru-cache';
import type { CacheConfig } from '../core/config';
import type { Entry } from './entry';
import type { CacheReport } from './report';
import type { EntryStore } from './store/entryStore';

export const MiB = 1024 * 1024;
/**
 * What a loaded entry's metadata costs in memory, on top of a body it holds. Session 6 measured
 * 2.0 KB of live heap for a 1 KiB response loaded from a JSON record (record fields, two policy
 * objects' header objects, the stored fields), about 2.3 KB once its quick answer's fixed part
 * is built, and the body's Buffer object; session 5 had counted 6 KiB (the heap's slack as
 * well), so a memory tier the bench sized for 100,000 entries held 75,000 of them. An entry read
 * from a compact record (store/compactMeta.ts) holds its fields and policy as two strings: the
 * proxy's heap per loaded entry (the LRU's, the disk index's and the vary markers' share
 * included) went from 3.2-3.3 to 2.45 KB in session 9. Not lowered: the margin is what keeps the RSS
 * of a million-entry proxy under its target (docs/BENCHMARKS.md, "A million entries").
 */
const LOADED_META_BYTES = 3072;
/** The size limit never takes more than this share of the disk's free space (plus what the store holds). */
const FREE_DISK_SHARE = 0.5;

/** The settings the store itself obeys: where and how much. */
export type StoreLimits = Pick<CacheConfig, 'dir' | 'maxEntries' | 'maxSizeMB' | 'maxMemoryMB'>;

/**
 * The memory tier for `limits`: with a disk tier the loaded entries within maxMemoryMB
 * (LOADED_META_BYTES each plus a body it holds); without one every entry, by count and bytes.
 */
export function memoryTier(
  limits: StoreLimits,
  diskMode: boolean,
  capacity: number,
  dispose: (entry: Entry, key: string, reason: LRUCache.DisposeReason) => void,
): LRUCache<string, Entry> {
  const memoryBytes = Math.floor(limits.maxMemoryMB * MiB);
  return new LRUCache<string, Entry>(
    diskMode
      ? {
          maxSize: Math.max(1, memoryBytes),
          sizeCalculation: (e) => LOADED_META_BYTES + (e.body ? e.body.length : 0),
          dispose,
        }
      : {
          max: limits.maxEntries > 0 ? limits.maxEntries : undefined,
          maxSize: Math.max(1, capacity),
          sizeCalculation: (e) => Math.max(1, e.size),
          dispose,
        },
  );
}

/**
 * maxSizeMB, but never more than a share of the free disk (what the store holds counts as
 * free). `freeBytes`: the free space as it was when the store was opened (its index may have
 * loaded later, while others wrote to the disk).
 */
export function diskSizeLimit(limits: StoreLimits, storedBytes: number, freeBytes: number | null, report: CacheReport): number {
  const configured = Math.floor(limits.maxSizeMB * MiB);
  if (freeBytes === null) return configured;
  const allowed = Math.floor((freeBytes + storedBytes) * FREE_DISK_SHARE);
  if (allowed < configured) {
    report.notice('info', `cache: size limit ${Math.round(allowed / MiB)} MiB, half of the free disk space (maxSizeMB is ${limits.maxSizeMB})`);
    return allowed;
  }
  return configured;
}

export function freeDiskBytes(dir: string): number | null {
  try {
    const s = fs.statfsSync(dir);
    return s.bavail * s.bsize;
  } catch {
    // statfs unavailable: the configured limit.
    return null;
  }
}

/** The notices of a disk tier whose index is in. */
export function reportOpened(report: CacheReport, disk: EntryStore, dir: string): void {
  const r = disk.report;
  if (r.afterCrash) {
    const who = r.staleLockHolder ? ` (process ${r.staleLockHolder} left its lock behind)` : '';
    report.notice('info', `cache: the previous run on ${dir} did not stop cleanly${who}; what it left half-written is cleared in the background`);
  }
  if (r.snapshotDamaged) report.notice('warn', `cache: the index snapshot in ${dir} is damaged; the entries it listed are dropped and will be fetched again`);
  if (r.entries || r.migrating) {
    const how = r.fromSnapshot ? (r.journalRecords ? `snapshot and ${r.journalRecords} journal records` : 'snapshot') : `journal of ${r.journalRecords} records`;
    report.notice('info', `cache: ${r.entries} entries in ${dir}, index read in ${Math.round(r.ms)} ms (${how}), while serving${r.migrating ? '; migrating the previous layout in the background' : ''}`);
  }
}

/** The warning for a disk tier that cannot be written. */
export function diskWarning(err: unknown, dir: string | null): string {
  const e = err as NodeJS.ErrnoException;
  const why = e.code === 'ENOSPC' ? 'the disk is full' : e.code === 'EROFS' || e.code === 'EACCES' || e.code === 'EPERM' ? 'it is not writable' : e.message;
  return `cache: cannot write to ${dir} (${why}); proxying continues, responses are kept in memory only`;
}
