import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { bodyDigestOf, bodyMatches, fileMatches, newBodyDigest } from './digest';
import { CorruptEntryError, type EntryMeta, type IndexRecord } from './entryMeta';
import { readLegacyMeta } from './store/migrate';

/** What list() and the LRU need of an entry without touching its files: kept in the one index. */
interface VerifiedFile {
  digest: string;
  ino: bigint;
  size: bigint;
  ctimeNs: bigint;
  verifiedAtNs: bigint;
}

const RACY_WINDOW_NS = 1_000_000_000n;

export { CorruptEntryError, type EntryMeta, type IndexRecord } from './entryMeta';

const INDEX_FILE = 'index.json';
const DIR_MODE = 0o700;
const FILE_MODE = 0o600;
/** How many metadata files a cold start (no clean index) reads at once. */
const SCAN_CONCURRENCY = 64;

/** Temp file names: unique within this process by the counter, across processes sharing the directory by the prefix. */
const TEMP_PREFIX = `${process.pid.toString(36)}-${randomBytes(4).toString('hex')}`;
let tempCounter = 0;
function tempName(suffix: string): string {
  return `${TEMP_PREFIX}-${(tempCounter++).toString(36)}${suffix}`;
}

export function hashKey(key: string): string {
  return createHash('sha256').update(key).digest('hex');
}

/** Streams one body into a temp file while computing its digest; nothing is visible until commit renames it. */
export class BodyWriter {
  readonly tmpPath: string;
  private readonly stream: fs.WriteStream;
  private readonly digest = newBodyDigest();
  size = 0;
  error: NodeJS.ErrnoException | null = null;
  private closed: Promise<void>;
  private drainWaiters: Array<() => void> = [];

  constructor(tmpDir: string) {
    this.tmpPath = path.join(tmpDir, tempName('.tmp'));
    // A 64 KiB network chunk must not report backpressure at once (the default mark is 16 KiB):
    // that paused the origin after every chunk and left the miss path idle a third of the time.
    this.stream = fs.createWriteStream(this.tmpPath, { mode: FILE_MODE, flags: 'wx', highWaterMark: 1024 * 1024 });
    this.closed = new Promise((resolve) => this.stream.once('close', () => resolve()));
    this.stream.on('error', (err: NodeJS.ErrnoException) => {
      this.error ??= err;
      // A failed file never drains: release whoever waits so the response keeps flowing.
      const waiting = this.drainWaiters;
      this.drainWaiters = [];
      for (const fn of waiting) fn();
    });
    this.stream.on('drain', () => {
      const waiting = this.drainWaiters;
      this.drainWaiters = [];
      for (const fn of waiting) fn();
    });
  }

  /** False when the file is behind: wait for onDrain before writing more. */
  write(chunk: Buffer): boolean {
    this.digest.update(chunk);
    this.size += chunk.length;
    if (this.error) return true;
    return this.stream.write(chunk);
  }

  onDrain(fn: () => void): void {
    if (this.error) fn();
    else this.drainWaiters.push(fn);
  }

  abort(): void {
    this.stream.destroy();
    void this.closed.then(() => fsp.unlink(this.tmpPath).catch(() => {}));
  }

  /** Closes the temp file; resolves with the body's digest, rejects with the write error if there was one. */
  async finish(): Promise<string> {
    this.stream.end();
    await this.closed;
    if (this.error) {
      await fsp.unlink(this.tmpPath).catch(() => {});
      throw this.error;
    }
    return this.digest.finish();
  }
}

/**
 * The disk tier: entries/<hh>/<sha256(key)>.body and .meta, owner-only. Body first, metadata
 * last, each by temp file + rename, so metadata never points at a partial body. A clean
 * shutdown leaves one compact index (index.json) that the next start reads instead of every
 * metadata file; it is removed on start, so after a crash the start scans the metadata.
 */
export class DiskStore {
  readonly entriesDir: string;
  readonly tmpDir: string;
  /** Bucket directories known to exist: a miss costs a rename and a write, not also a mkdir. */
  private readonly buckets = new Set<string>();
  /**
   * Body files whose digest matched, with their identity at that moment. Any write to a file
   * (a bit flip, a truncation, a replacement) changes its inode or ctime, which no user process
   * can set back, so an unchanged identity means an unchanged body: a large hit is streamed
   * without reading it through first.
   */
  private readonly verified = new Map<string, VerifiedFile>();

  private constructor(readonly dir: string) {
    this.entriesDir = path.join(dir, 'entries');
    this.tmpDir = path.join(dir, 'tmp');
  }

  static async open(dir: string): Promise<{ store: DiskStore; records: IndexRecord[]; fromIndex: boolean }> {
    const store = new DiskStore(path.resolve(dir));
    await fsp.mkdir(store.dir, { recursive: true, mode: DIR_MODE });
    await fsp.chmod(store.dir, DIR_MODE).catch(() => {});
    // Writable? Fail now (read-only dir or file system) rather than on the first response.
    await fsp.access(store.dir, fs.constants.W_OK);
    await fsp.mkdir(store.entriesDir, { recursive: true, mode: DIR_MODE });
    await fsp.mkdir(store.tmpDir, { recursive: true, mode: DIR_MODE });
    // Temp files are leftovers of writes a crash interrupted.
    for (const name of await fsp.readdir(store.tmpDir)) await fsp.unlink(path.join(store.tmpDir, name)).catch(() => {});
    const indexed = await store.readIndex();
    if (indexed) return { store, records: indexed, fromIndex: true };
    return { store, records: await store.scan(), fromIndex: false };
  }

  private async readIndex(): Promise<IndexRecord[] | null> {
    const file = path.join(this.dir, INDEX_FILE);
    let text: string;
    try {
      text = await fsp.readFile(file, 'utf8');
    } catch {
      return null;
    }
    // From here on the store is "dirty" until close writes a new index.
    await fsp.unlink(file).catch(() => {});
    try {
      const parsed = JSON.parse(text) as { v: number; rows: IndexRow[] };
      if (parsed.v !== 2 || !Array.isArray(parsed.rows)) return null;
      return parsed.rows.map(fromRow);
    } catch {
      return null;
    }
  }

  /** Reads every metadata file (many at once); drops bodies without metadata and unreadable metadata. */
  private async scan(): Promise<IndexRecord[]> {
    const records: IndexRecord[] = [];
    const jobs: Array<() => Promise<void>> = [];
    let buckets: string[] = [];
    try {
      buckets = await fsp.readdir(this.entriesDir);
    } catch {
      return records;
    }
    for (const bucket of buckets) {
      const bucketDir = path.join(this.entriesDir, bucket);
      let names: string[];
      try {
        names = await fsp.readdir(bucketDir);
      } catch {
        continue;
      }
      const metas = new Set(names.filter((n) => n.endsWith('.meta')).map((n) => n.slice(0, -5)));
      for (const name of names) {
        if (name.endsWith('.body') && !metas.has(name.slice(0, -5))) jobs.push(() => fsp.unlink(path.join(bucketDir, name)).catch(() => {}));
      }
      for (const hash of metas) {
        jobs.push(async () => {
          try {
            const meta = await this.readMeta(hash);
            records.push(toRecord(meta));
          } catch {
            await this.remove(hash);
          }
        });
      }
    }
    let next = 0;
    const worker = async () => {
      while (next < jobs.length) await jobs[next++]();
    };
    await Promise.all(Array.from({ length: Math.min(SCAN_CONCURRENCY, jobs.length) }, worker));
    // Oldest first, so inserting in order rebuilds the LRU.
    return records.sort((a, b) => a.storedAt - b.storedAt);
  }

  bodyPath(hash: string): string {
    return path.join(this.entriesDir, hash.slice(0, 2), `${hash}.body`);
  }

  metaPath(hash: string): string {
    return path.join(this.entriesDir, hash.slice(0, 2), `${hash}.meta`);
  }

  newWriter(): BodyWriter {
    return new BodyWriter(this.tmpDir);
  }

  /** Publishes a finished body, then its metadata. */
  /**
   * Publishes a finished body and its metadata. `streamed`: the body is large enough to be sent
   * from the file, so the file's identity is remembered as verified (smaller bodies are read
   * whole and checked on every read, and skip the stat).
   */
  async commit(writer: BodyWriter, meta: EntryMeta, streamed: boolean): Promise<void> {
    const bucket = path.dirname(this.bodyPath(meta.hash));
    if (!this.buckets.has(bucket)) {
      await fsp.mkdir(bucket, { recursive: true, mode: DIR_MODE });
      this.buckets.add(bucket);
    }
    try {
      await fsp.rename(writer.tmpPath, this.bodyPath(meta.hash)).catch(async (err: NodeJS.ErrnoException) => {
        if (err.code !== 'ENOENT') throw err;
        // The bucket was removed behind our back (someone cleaned the dir): make it again.
        await fsp.mkdir(bucket, { recursive: true, mode: DIR_MODE });
        await fsp.rename(writer.tmpPath, this.bodyPath(meta.hash));
      });
    } catch (err) {
      await fsp.unlink(writer.tmpPath).catch(() => {});
      throw err;
    }
    // The digest was computed from the bytes as they were written, so the file is verified as of
    // its rename. Only a write by someone else within the same clock tick as that rename could
    // go unnoticed; the first hit of a large entry, just after its miss, is not re-read for it.
    const written = streamed ? await fsp.stat(this.bodyPath(meta.hash), { bigint: true }).catch(() => null) : null;
    if (written) this.remember(meta.hash, meta.digest, written, written.ctimeNs + RACY_WINDOW_NS);
    await this.writeMeta(meta);
  }

  private remember(hash: string, digest: string, stat: fs.BigIntStats, verifiedAtNs = BigInt(Date.now()) * 1_000_000n): void {
    this.verified.set(hash, { digest, ino: stat.ino, size: stat.size, ctimeNs: stat.ctimeNs, verifiedAtNs });
  }

  private unchangedSinceVerified(hash: string, digest: string, stat: fs.BigIntStats): boolean {
    const known = this.verified.get(hash);
    return (
      known !== undefined &&
      known.digest === digest &&
      known.ino === stat.ino &&
      known.size === stat.size &&
      known.ctimeNs === stat.ctimeNs &&
      // File times tick coarsely: a write in the same tick as the last change would keep the
      // ctime. Trust it only when verified well after that change (git's "racy clean" rule).
      known.ctimeNs + RACY_WINDOW_NS <= known.verifiedAtNs
    );
  }

  async writeMeta(meta: EntryMeta): Promise<void> {
    const tmp = path.join(this.tmpDir, tempName('.meta.tmp'));
    try {
      // The JSON, then a line with its digest: a damaged field name or value is found, not served.
      const json = JSON.stringify(meta);
      await fsp.writeFile(tmp, `${json}\n${bodyDigestOf(Buffer.from(json))}`, { mode: FILE_MODE });
      await fsp.rename(tmp, this.metaPath(meta.hash));
    } catch (err) {
      await fsp.unlink(tmp).catch(() => {});
      throw err;
    }
  }

  readMeta(hash: string): Promise<EntryMeta> {
    return readLegacyMeta(this.metaPath(hash), hash);
  }

  /** The whole body, checked against its digest. */
  async readBody(hash: string, digest: string, size: number): Promise<Buffer> {
    let body: Buffer;
    try {
      body = await fsp.readFile(this.bodyPath(hash));
    } catch (err) {
      throw new CorruptEntryError(`body unreadable (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
    }
    if (body.length !== size) throw new CorruptEntryError(`body is ${body.length} bytes, expected ${size}`);
    if (!bodyMatches(body, digest)) throw new CorruptEntryError('body digest mismatch');
    return body;
  }

  /**
   * Opens a body too large for memory, checking its digest by reading it through once unless
   * the file is unchanged since it was last verified, so a damaged file is never sent; the
   * caller streams the returned handle from the start.
   */
  async openVerified(hash: string, expected: string, size: number): Promise<fsp.FileHandle> {
    let handle: fsp.FileHandle;
    try {
      handle = await fsp.open(this.bodyPath(hash), 'r');
    } catch (err) {
      throw new CorruptEntryError(`body unreadable (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
    }
    try {
      const stat = await handle.stat({ bigint: true });
      if (stat.size !== BigInt(size)) throw new CorruptEntryError(`body is ${stat.size} bytes, expected ${size}`);
      if (this.unchangedSinceVerified(hash, expected, stat)) return handle;
      if (!(await fileMatches(handle, expected, size))) throw new CorruptEntryError('body digest mismatch');
      this.remember(hash, expected, stat);
      return handle;
    } catch (err) {
      await handle.close().catch(() => {});
      throw err;
    }
  }

  /** Metadata first: without it the body is an orphan nobody serves. */
  async remove(hash: string): Promise<void> {
    this.verified.delete(hash);
    await fsp.unlink(this.metaPath(hash)).catch(() => {});
    await fsp.unlink(this.bodyPath(hash)).catch(() => {});
  }

  async saveIndex(records: IndexRecord[]): Promise<void> {
    const tmp = path.join(this.tmpDir, tempName('.index.tmp'));
    // Rows, not objects: without the repeated field names the index is 40% smaller and parses faster.
    await fsp.writeFile(tmp, JSON.stringify({ v: 2, rows: records.map(toRow) }), { mode: FILE_MODE });
    await fsp.rename(tmp, path.join(this.dir, INDEX_FILE));
  }
}

export function toRecord(m: IndexRecord): IndexRecord {
  return {
    key: m.key,
    hash: m.hash,
    url: m.url,
    status: m.status,
    size: m.size,
    digest: m.digest,
    storedAt: m.storedAt,
    freshUntil: m.freshUntil,
    hits: m.hits,
    contentType: m.contentType,
    vary: m.vary,
  };
}

/** One index line: [key, url, status, size, digest, storedAt, freshUntil, hits, contentType, vary]. */
type IndexRow = [string, string, number, number, string, number, number, number, string | null, string[] | null];

function toRow(r: IndexRecord): IndexRow {
  return [r.key, r.url, r.status, r.size, r.digest, r.storedAt, r.freshUntil, r.hits, r.contentType ?? null, r.vary];
}

function fromRow(row: IndexRow): IndexRecord {
  const [key, url, status, size, digest, storedAt, freshUntil, hits, contentType, vary] = row;
  return { key, hash: hashKey(key), url, status, size, digest, storedAt, freshUntil, hits, contentType: contentType ?? undefined, vary };
}
