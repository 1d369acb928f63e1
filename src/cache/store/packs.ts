import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import * as zlib from 'node:zlib';

/**
 * Pack files: entries' records (metadata, and the body when it is small) appended one after
 * another, many to a file, so a 1 KiB response costs about its own size on disk instead of two
 * filesystem blocks. Each record carries its length and a CRC-32 of all of it; the index says
 * where the live ones are, so a record a crash left half-written, or one replaced since, is
 * garbage nobody reads. A pack more than 30% garbage is compacted: its live records are
 * copied to the active pack and the file is deleted.
 *
 * Record: magic u32 | length u32 | crc32 u32 (of everything after it) | flags u32 |
 * key hash (32 bytes) | metadata length u32 | metadata (deflated with a shared dictionary:
 * JSON, or with FLAG_COMPACT the compact form of compactMeta.ts and its own dictionary; or with
 * FLAG_PLAIN, not deflated, the plain form of plainMeta.ts) | inline body.
 */

const RECORD_MAGIC = 0x31525043; // "CPR1"
export const RECORD_HEADER = 52;
/** Records go to a new pack once the active one is this large. */
export const PACK_TARGET = 64 * 1024 * 1024;
/** The smallest pack target a small size limit gets (see packTargetFor). */
const PACK_TARGET_MIN = 1024 * 1024;

/**
 * The pack size for a size limit: a sixteenth of it, between 1 MiB and PACK_TARGET. Only sealed
 * packs are compacted, so the garbage of replaced and evicted records in the active pack stays
 * on disk until it fills: with 64 MiB packs a cache limited to 1 MiB took 64 MiB of disk.
 */
export function packTargetFor(maxBytes: number): number {
  return Math.min(PACK_TARGET, Math.max(PACK_TARGET_MIN, Math.floor(maxBytes / 16)));
}
const FILE_MODE = 0o600;
/** A sealed pack whose live records are less than this share of it is compacted. */
const COMPACT_BELOW = 0.7;
const FLAG_DEFLATED = 1;
export const FLAG_BODY_FILE = 2;
/** The metadata is the compact form (compactMeta.ts), deflated with COMPACT_DICTIONARY. */
const FLAG_COMPACT = 4;
/** The metadata is the plain form (plainMeta.ts), not deflated (what records are written in since session 10). */
const FLAG_PLAIN = 8;

type Crc32 = (data: Uint8Array, value?: number) => number;
const crc32 = (zlib as unknown as { crc32: Crc32 }).crc32;

/**
 * Words every metadata JSON repeats: deflate finds them here instead of spelling them out in
 * each small record (a 700-byte metadata text becomes about 300 bytes). Changing it would make
 * old records unreadable: records name no dictionary version, so this text is frozen (a new one
 * needs a new flag).
 */
/**
 * The output chunk of a record's inflate: zlib's default of 16 KiB is a buffer of its own per
 * call (one per cold hit, freed only by a GC), against 2 KiB from Node's shared pool; metadata
 * larger than this comes in several chunks.
 */
const INFLATE_CHUNK = 2048;

const META_DICTIONARY = Buffer.from(
  '{"v":1,"key":"GET http://","hash":"","url":"http://","status":200,"size":,"digest":"crc32:","storedAt":17,"freshUntil":17,"hits":0,' +
    '"contentType":"application/octet-stream","vary":null,"statusMessage":"OK","raw":["Content-Type","Content-Length","Cache-Control","max-age=",' +
    '"ETag","Last-Modified","Date","Expires","Vary","Accept-Encoding","Content-Encoding","gzip","Server","Via","1.1 caching-proxy","Accept-Ranges","bytes",' +
    '"Connection","keep-alive","public, max-age=","immutable","application/json","application/vnd.npm.install-v1+json","text/html; charset=utf-8",' +
    '"application/x-tar","application/gzip","text/plain","Mon, Tue, Wed, Thu, Fri, Sat, Sun, Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec 2026 GMT"],' +
    '"policy":{"v":1,"t":17,"sh":true,"ch":0.1,"imm":86400000,"st":200,"resh":{"content-type":"","content-length":"","cache-control":"max-age=",' +
    '"etag":"","last-modified":"","date":"","via":"1.1 caching-proxy","vary":"accept-encoding","accept-ranges":"bytes"},"rescc":{"max-age":"",' +
    '"public":true,"immutable":true},"m":"GET","u":"http://","h":"","a":true,"reqh":{"host":""},"reqcc":{}}}',
);

/**
 * What the compact form repeats (its stored fields' block and the policy's JSON text): frozen
 * like META_DICTIONARY, for the same reason.
 */
const COMPACT_DICTIONARY = Buffer.from(
  'GET http://crc32:application/octet-streamOK' +
    'Content-Type: application/octet-stream\r\nContent-Length: \r\nCache-Control: public, max-age=\r\nETag: "\r\nLast-Modified: \r\n' +
    'Expires: \r\nVary: Accept-Encoding\r\nContent-Encoding: gzip\r\nServer: \r\nAccept-Ranges: bytes\r\nConnection: keep-alive\r\n' +
    'Content-Type: application/json\r\nContent-Type: application/vnd.npm.install-v1+json\r\nContent-Type: text/html; charset=utf-8\r\n' +
    'Content-Type: application/x-tar\r\nContent-Type: application/gzip\r\nContent-Type: text/plain\r\nCache-Control: max-age=\r\n' +
    'Date: Mon, Tue, Wed, Thu, Fri, Sat, Sun, Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec 2026 GMT\r\nVia: 1.1 caching-proxy\r\n' +
    '{"v":1,"t":17,"sh":true,"ch":0.1,"imm":86400000,"st":200,"resh":{"content-type":"application/octet-stream","content-length":"",' +
    '"cache-control":"public, max-age=","etag":"\\"","last-modified":"","expires":"","vary":"accept-encoding","content-encoding":"gzip",' +
    '"server":"","accept-ranges":"bytes","connection":"keep-alive","via":"1.1 caching-proxy","date":""},"rescc":{"max-age":"",' +
    '"public":true,"immutable":true},"m":"GET","u":"http://","h":"127.0.0.1:","a":true,"reqh":null,"reqcc":{}}',
);

export interface DecodedRecord {
  hash: string;
  meta: Buffer;
  /** `meta` is the compact form (compactMeta.ts), not JSON. */
  compact: boolean;
  /** `meta` is the plain form (plainMeta.ts). */
  plain: boolean;
  /** The inline body (a view into the record), or null when the body is in a file of its own. */
  body: Buffer | null;
}

export class CorruptRecordError extends Error {}

/**
 * A record: `meta` JSON text, or (a Buffer) the compact form, deflated; with `plain`, `meta` is
 * the plain form (plainMeta.ts), stored as it is.
 */
export function encodeRecord(hashHex: string, metaForm: string | Buffer, body: Buffer | null, plain = false): Buffer {
  const compact = typeof metaForm !== 'string';
  if (plain && !compact) throw new Error('the plain form is a Buffer');
  const meta = plain
    ? (metaForm as Buffer)
    : zlib.deflateRawSync(compact ? metaForm : Buffer.from(metaForm), { dictionary: compact ? COMPACT_DICTIONARY : META_DICTIONARY, level: 6 });
  const bodyLength = body ? body.length : 0;
  const total = RECORD_HEADER + meta.length + bodyLength;
  const buf = Buffer.allocUnsafe(total);
  buf.writeUInt32LE(RECORD_MAGIC, 0);
  buf.writeUInt32LE(total, 4);
  const form = plain ? FLAG_PLAIN : FLAG_DEFLATED | (compact ? FLAG_COMPACT : 0);
  buf.writeUInt32LE(form | (body ? 0 : FLAG_BODY_FILE), 12);
  buf.write(hashHex, 16, 32, 'hex');
  buf.writeUInt32LE(meta.length, 48);
  meta.copy(buf, RECORD_HEADER);
  if (body) body.copy(buf, RECORD_HEADER + meta.length);
  buf.writeUInt32LE(crc32(buf.subarray(12)), 8);
  return buf;
}

/** Whether a record's key hash (bytes 16-48) is this one, in hex (without making the record's hex string). */
function hashIs(buf: Buffer, hashHex: string): boolean {
  if (hashHex.length !== 64) return false;
  for (let i = 0; i < 32; i++) {
    const b = buf[16 + i];
    if (hashHex.charCodeAt(2 * i) !== HEX_CODES[b >> 4] || hashHex.charCodeAt(2 * i + 1) !== HEX_CODES[b & 15]) return false;
  }
  return true;
}
const HEX_CODES = Array.from('0123456789abcdef', (c) => c.charCodeAt(0));

/**
 * Checks and splits a record read from a pack; throws CorruptRecordError if any byte of it is
 * off. `hash`: the key hash it must carry (the lookup's, as `hash` then), else CorruptRecordError.
 */
export function decodeRecord(buf: Buffer, hash?: string): DecodedRecord {
  if (buf.length < RECORD_HEADER || buf.readUInt32LE(0) !== RECORD_MAGIC) throw new CorruptRecordError('record header damaged');
  if (buf.readUInt32LE(4) !== buf.length) throw new CorruptRecordError('record length mismatch');
  if (buf.readUInt32LE(8) !== crc32(buf.subarray(12))) throw new CorruptRecordError('record checksum mismatch');
  const flags = buf.readUInt32LE(12);
  const metaLength = buf.readUInt32LE(48);
  if (RECORD_HEADER + metaLength > buf.length) throw new CorruptRecordError('record metadata length out of range');
  const stored = buf.subarray(RECORD_HEADER, RECORD_HEADER + metaLength);
  if (hash !== undefined && !hashIs(buf, hash)) throw new CorruptRecordError('record belongs to another key');
  const compact = (flags & FLAG_COMPACT) !== 0;
  const plain = (flags & FLAG_PLAIN) !== 0;
  let meta = stored;
  if (flags & FLAG_DEFLATED && !plain) {
    try {
      meta = zlib.inflateRawSync(stored, { dictionary: compact ? COMPACT_DICTIONARY : META_DICTIONARY, chunkSize: INFLATE_CHUNK });
    } catch {
      throw new CorruptRecordError('record metadata does not inflate');
    }
  }
  return {
    hash: hash ?? buf.toString('hex', 16, 48),
    meta,
    compact,
    plain,
    body: flags & FLAG_BODY_FILE ? null : buf.subarray(RECORD_HEADER + metaLength),
  };
}

interface PackFile {
  fd: number;
  /** Bytes written or reserved: where the next record goes. */
  end: number;
  /** Bytes of records the index points at. */
  live: number;
  /** Reads and writes in flight: the descriptor must outlive them. */
  busy: number;
  closing: boolean;
}

export class Packs {
  private readonly files = new Map<number, PackFile>();
  private active = -1;

  private constructor(
    readonly dir: string,
    private target: number,
  ) {}

  /** Records go to a new pack once the active one reaches this size (from the next record on). */
  setTarget(bytes: number): void {
    this.target = bytes;
  }

  /**
   * Opens every pack file (a readdir and one open each: a million entries make about 25).
   * `fresh`: new records go to a new pack (after a crash, so that nothing new is written where
   * the interrupted writes were).
   */
  static open(dir: string, target = PACK_TARGET, fresh = false): Packs {
    const packs = new Packs(dir, target);
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    for (const name of fs.readdirSync(dir)) {
      const m = /^(\d+)\.pack$/.exec(name);
      if (!m) continue;
      const id = Number(m[1]);
      const fd = fs.openSync(path.join(dir, name), 'r+');
      packs.files.set(id, { fd, end: fs.fstatSync(fd).size, live: 0, busy: 0, closing: false });
      if (id > packs.active) packs.active = id;
    }
    if (packs.active < 0) packs.startPack(0);
    else if (fresh) packs.startPack(packs.active + 1);
    return packs;
  }

  private startPack(id: number): void {
    // Pack ids have 24 bits in the journal: 16 million packs, 16 TiB written at the smallest pack size.
    if (id > 0xffffff) throw new Error('the cache store has used up its pack numbers; clear the cache to go on');
    const fd = fs.openSync(path.join(this.dir, `${id}.pack`), 'w+', FILE_MODE);
    this.files.set(id, { fd, end: 0, live: 0, busy: 0, closing: false });
    this.active = id;
  }

  ids(): number[] {
    return [...this.files.keys()].sort((a, b) => a - b);
  }

  has(pack: number): boolean {
    return this.files.has(pack);
  }

  /** Counts a record as live (at load, from the index, and after each append the index takes). */
  addLive(pack: number, length: number): void {
    const f = this.files.get(pack);
    if (f) f.live += length;
  }

  removeLive(pack: number, length: number): void {
    const f = this.files.get(pack);
    if (f) f.live -= length;
  }

  /** A place for a record of this length at the end of the active pack; appends in flight at once each get their own. */
  reserve(length: number): { pack: number; offset: number } {
    let f = this.files.get(this.active)!;
    if (f.end > 0 && f.end + length > this.target) {
      this.startPack(this.active + 1);
      f = this.files.get(this.active)!;
    }
    const offset = f.end;
    f.end += length;
    return { pack: this.active, offset };
  }

  /** Writes a record at its reserved place. */
  async write(at: { pack: number; offset: number }, record: Buffer): Promise<void> {
    const f = this.files.get(at.pack);
    if (!f) throw new Error(`pack ${at.pack} was removed`);
    await this.using(f, () => writeAll(f.fd, record, at.offset));
  }

  /** Runs one read or write on a pack's descriptor; a pack deleted meanwhile is closed only after it. */
  private async using<T>(f: PackFile, io: () => Promise<T>): Promise<T> {
    f.busy++;
    try {
      return await io();
    } finally {
      if (--f.busy === 0 && f.closing) fs.closeSync(f.fd);
    }
  }

  private release(f: PackFile): void {
    f.closing = true;
    if (f.busy === 0) fs.closeSync(f.fd);
  }

  /**
   * Reads a record with one synchronous pread: a lookup's record (at most INLINE_MAX and its
   * metadata) is almost always in the page cache, where that takes a few microseconds, against a
   * round trip through libuv's thread pool (two thread switches and a futex) for the same copy.
   * A record not in the page cache blocks the event loop for one disk read. `into`: a buffer to
   * read into (its start is returned) when it is large enough, instead of a new one.
   */
  readNow(pack: number, offset: number, length: number, into?: Buffer): Buffer {
    const f = this.files.get(pack);
    if (!f) throw new CorruptRecordError(`pack ${pack} is missing`);
    const buf = into && into.length >= length ? into.subarray(0, length) : Buffer.allocUnsafe(length);
    let got = 0;
    while (got < length) {
      const bytesRead = fs.readSync(f.fd, buf, got, length - got, offset + got);
      if (bytesRead === 0) throw new CorruptRecordError('record cut short');
      got += bytesRead;
    }
    return buf;
  }

  async read(pack: number, offset: number, length: number): Promise<Buffer> {
    const f = this.files.get(pack);
    if (!f) throw new CorruptRecordError(`pack ${pack} is missing`);
    const buf = Buffer.allocUnsafe(length);
    let got = 0;
    while (got < length) {
      const { bytesRead } = await this.using(f, () => readAt(f.fd, buf, got, length - got, offset + got));
      if (bytesRead === 0) throw new CorruptRecordError('record cut short');
      got += bytesRead;
    }
    return buf;
  }

  /** The pack new records go to. */
  get activePack(): number {
    return this.active;
  }

  /** Every pack's bytes on disk and live bytes. */
  usage(): Array<{ pack: number; end: number; live: number; active: boolean }> {
    return this.ids().map((pack) => ({ pack, end: this.files.get(pack)!.end, live: this.files.get(pack)!.live, active: pack === this.active }));
  }

  get diskBytes(): number {
    let total = 0;
    for (const f of this.files.values()) total += f.end;
    return total;
  }

  /**
   * A sealed pack worth compacting (over 30% garbage), the emptiest first; -1 if none. Copying
   * up to 70% to reclaim 30% keeps the packs within about 1.4x their live bytes.
   */
  compactionCandidate(): number {
    let best = -1;
    let bestRatio = COMPACT_BELOW;
    for (const [pack, f] of this.files) {
      if (pack === this.active || f.end === 0) continue;
      const ratio = f.live / f.end;
      if (ratio < bestRatio) {
        best = pack;
        bestRatio = ratio;
      }
    }
    return best;
  }

  async deletePack(pack: number): Promise<void> {
    const f = this.files.get(pack);
    if (!f || pack === this.active) return;
    this.files.delete(pack);
    this.release(f);
    await fsp.rm(path.join(this.dir, `${pack}.pack`), { force: true });
  }

  /** Empties every pack (purge all): one new empty active pack remains. */
  async reset(): Promise<void> {
    const ids = this.ids();
    for (const id of ids) {
      this.release(this.files.get(id)!);
      this.files.delete(id);
      await fsp.rm(path.join(this.dir, `${id}.pack`), { force: true });
    }
    this.startPack(ids.length ? ids[ids.length - 1] + 1 : 0);
  }

  close(): void {
    for (const f of this.files.values()) this.release(f);
    this.files.clear();
  }
}

function writeAll(fd: number, buf: Buffer, position: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const step = (done: number) => {
      fs.write(fd, buf, done, buf.length - done, position + done, (err, written) => {
        if (err) return reject(err);
        if (done + written < buf.length) step(done + written);
        else resolve();
      });
    };
    step(0);
  });
}

function readAt(fd: number, buf: Buffer, at: number, length: number, position: number): Promise<{ bytesRead: number }> {
  return new Promise((resolve, reject) => {
    fs.read(fd, buf, at, length, position, (err, bytesRead) => (err ? reject(err) : resolve({ bytesRead })));
  });
}
