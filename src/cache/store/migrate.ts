import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { bodyMatches, fileMatches } from '../digest';
import { CorruptEntryError, type JsonEntryMeta } from '../entryMeta';
import { INLINE_MAX } from './writer';
import type { EntryStore } from './entryStore';
import { hashKey } from './keyIndex';

/** An old index.json larger than this is not read for its LRU order (the entries are still all migrated). */
const MAX_LEGACY_INDEX = 256 * 1024 * 1024;

/**
 * The layout before the store: entries/<hh>/<sha256(key)>.body and .meta (JSON, then a line with
 * its CRC-32), and index.json after a clean stop. Migrated in the background after start: entry
 * by entry, into the store, then its old files are removed, so a crash at any moment leaves
 * each entry in one layout or both (then imported again, the same bytes). Until it is done, a
 * lookup the store misses tries the old files of that hash (the hash names them), so nothing
 * stored before is missed meanwhile.
 */
export class LegacyMigration {
  private readonly entriesDir: string;
  private readonly running = new Map<string, Promise<void>>();
  private stopped = false;
  private imported = 0;

  private constructor(
    private readonly root: string,
    private readonly store: EntryStore,
  ) {
    this.entriesDir = path.join(root, 'entries');
  }

  static detect(root: string, store: EntryStore): LegacyMigration | null {
    return fs.existsSync(path.join(root, 'entries')) ? new LegacyMigration(root, store) : null;
  }

  stop(): void {
    this.stopped = true;
  }

  private metaPath(hash: string): string {
    return path.join(this.entriesDir, hash.slice(0, 2), `${hash}.meta`);
  }

  private bodyPath(hash: string): string {
    return path.join(this.entriesDir, hash.slice(0, 2), `${hash}.body`);
  }

  /** Moves one old entry into the store (as the oldest entry, unless it is being used now); a damaged one is removed. */
  importOne(hash: string, asOldest = false): Promise<void> {
    let run = this.running.get(hash);
    if (!run) {
      run = this.migrate(hash, asOldest).finally(() => this.running.delete(hash));
      this.running.set(hash, run);
    }
    return run;
  }

  private async migrate(hash: string, asOldest: boolean): Promise<void> {
    let meta: JsonEntryMeta | null = null;
    try {
      meta = await readLegacyMeta(this.metaPath(hash), hash);
    } catch {
      meta = null;
    }
    // Stored anew since the start: that one is newer.
    if (meta && !this.store.has(hash) && !this.stopped) {
      try {
        if (meta.size <= INLINE_MAX) {
          const body = await fsp.readFile(this.bodyPath(hash));
          if (body.length === meta.size && bodyMatches(body, meta.digest)) {
            await this.store.put(meta, body, null, false, asOldest);
            this.imported++;
          }
        } else if (await bodyFileMatches(this.bodyPath(hash), meta.digest, meta.size)) {
          await this.store.put(meta, null, this.bodyPath(hash), true, asOldest);
          this.imported++;
        }
      } catch {
        // Unreadable: dropped, as the old store would have.
      }
    }
    if (this.stopped) return;
    await fsp.unlink(this.metaPath(hash)).catch(() => {});
    await fsp.unlink(this.bodyPath(hash)).catch(() => {});
  }

  /** Migrates every old entry, most recently used first (each placed below the last), then removes the old layout. */
  async run(): Promise<number> {
    const ordered: string[] = [];
    const seen = new Set<string>();
    const indexFile = path.join(this.root, 'index.json');
    try {
      const stat = await fsp.stat(indexFile);
      if (stat.size <= MAX_LEGACY_INDEX) {
        const parsed = JSON.parse(await fsp.readFile(indexFile, 'utf8')) as { v: number; rows: Array<[string]> };
        if (parsed.v === 2 && Array.isArray(parsed.rows)) {
          for (let i = parsed.rows.length - 1; i >= 0; i--) {
            const hash = hashKey(String(parsed.rows[i][0]));
            if (!seen.has(hash)) ordered.push(hash);
            seen.add(hash);
          }
        }
      }
    } catch {
      // No old index (the old version crashed): directory order.
    }
    for (const hash of ordered) {
      if (this.stopped) return this.imported;
      await this.importOne(hash, true);
    }
    let buckets: string[] = [];
    try {
      buckets = await fsp.readdir(this.entriesDir);
    } catch {
      buckets = [];
    }
    for (const bucket of buckets) {
      let names: string[];
      try {
        names = await fsp.readdir(path.join(this.entriesDir, bucket));
      } catch {
        continue;
      }
      for (const name of names) {
        if (this.stopped) return this.imported;
        const m = /^([0-9a-f]{64})\.(meta|body)$/.exec(name);
        if (!m) {
          await fsp.unlink(path.join(this.entriesDir, bucket, name)).catch(() => {});
          continue;
        }
        if (!seen.has(m[1])) {
          seen.add(m[1]);
          await this.importOne(m[1], true);
        }
      }
    }
    if (this.stopped) return this.imported;
    await fsp.rm(this.entriesDir, { recursive: true, force: true });
    await fsp.rm(indexFile, { force: true });
    return this.imported;
  }
}

/** An old metadata file, checked by its digest line (files from before that line are one JSON text). */
export async function readLegacyMeta(file: string, hash: string): Promise<JsonEntryMeta> {
  const text = await fsp.readFile(file, 'utf8');
  const lineEnd = text.lastIndexOf('\n');
  const json = lineEnd < 0 ? text : text.slice(0, lineEnd);
  if (lineEnd >= 0 && !bodyMatches(Buffer.from(json), text.slice(lineEnd + 1))) throw new CorruptEntryError('metadata digest mismatch');
  const meta = JSON.parse(json) as JsonEntryMeta;
  if (meta.digest === undefined && typeof meta.sha256 === 'string') {
    meta.digest = meta.sha256;
    delete meta.sha256;
  }
  if (meta.v !== 1 || meta.hash !== hash || typeof meta.digest !== 'string' || !Array.isArray(meta.raw) || !meta.policy) throw new CorruptEntryError('metadata unreadable');
  return meta;
}

async function bodyFileMatches(file: string, expected: string, size: number): Promise<boolean> {
  const handle = await fsp.open(file, 'r');
  try {
    return (await handle.stat()).size === size && (await fileMatches(handle, expected, size));
  } finally {
    await handle.close();
  }
}
