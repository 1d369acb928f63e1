import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import type { EntryMeta, JsonEntryMeta } from '../../src/cache/entryMeta';
import { rawOf } from '../../src/cache/store/compactMeta';
import { IndexJournal } from '../../src/cache/store/journal';
import { hashHalves } from '../../src/cache/store/keyIndex';

/** The body stored for a URL in store tests: deterministic, so any corruption shows. */
export function bodyOf(url: string, size: number): Buffer {
  const seed = createHash('sha256').update(url).digest('hex');
  return Buffer.from(seed.repeat(Math.ceil(size / seed.length) + 1).slice(0, size));
}

export function sha256(key: string): string {
  return createHash('sha256').update(key).digest('hex');
}

export function crc(data: Buffer | string): string {
  return `crc32:${zlib.crc32(data).toString(16).padStart(8, '0')}`;
}

/** The stored fields of either form of metadata. */
export function rawFields(meta: EntryMeta): string[] {
  return meta.v === 2 ? rawOf(meta.head) : meta.raw;
}

/** Metadata shaped like what the cache stores (a policy object http-cache-semantics can read). */
export function metaFor(url: string, body: Buffer): JsonEntryMeta {
  const key = 'GET ' + url;
  const now = Date.now();
  return {
    v: 1,
    key,
    hash: sha256(key),
    url,
    status: 200,
    size: body.length,
    digest: crc(body),
    storedAt: now,
    freshUntil: now + 600_000,
    hits: 0,
    contentType: 'application/octet-stream',
    vary: null,
    statusMessage: 'OK',
    raw: ['Content-Type', 'application/octet-stream', 'Content-Length', String(body.length), 'Cache-Control', 'max-age=600'],
    policy: {
      v: 1,
      t: now,
      sh: true,
      ch: 0.1,
      imm: 86400000,
      st: 200,
      resh: { 'content-type': 'application/octet-stream', 'content-length': String(body.length), 'cache-control': 'max-age=600' },
      rescc: { 'max-age': '600' },
      m: 'GET',
      u: url,
      h: new URL(url).host,
      a: true,
      reqh: { host: new URL(url).host },
      reqcc: {},
    } as unknown as JsonEntryMeta['policy'],
  };
}

/**
 * Writes an entry in the layout caches had before the store (entries/<hh>/<hash>.body and
 * .meta with its digest line), as the previous version of the proxy left it.
 */
export function writeLegacyEntry(dir: string, url: string, body: Buffer): JsonEntryMeta {
  const meta = metaFor(url, body);
  const bucket = path.join(dir, 'entries', meta.hash.slice(0, 2));
  fs.mkdirSync(bucket, { recursive: true, mode: 0o700 });
  fs.writeFileSync(path.join(bucket, `${meta.hash}.body`), body, { mode: 0o600 });
  const json = JSON.stringify(meta);
  fs.writeFileSync(path.join(bucket, `${meta.hash}.meta`), `${json}\n${crc(json)}`, { mode: 0o600 });
  return meta;
}

/** The old clean-shutdown index: rows oldest first. */
export function writeLegacyIndex(dir: string, metas: JsonEntryMeta[]): void {
  const rows = metas.map((m) => [m.key, m.url, m.status, m.size, m.digest, m.storedAt, m.freshUntil, m.hits, m.contentType ?? null, m.vary]);
  fs.writeFileSync(path.join(dir, 'index.json'), JSON.stringify({ v: 2, rows }), { mode: 0o600 });
}

/** Where a store keeps the entry of a key, read from its index files without opening it (the proxy may be running). */
export function locateEntry(dir: string, key: string): { pack: string; offset: number; length: number; body: string | null } | null {
  const index = IndexJournal.inspect(path.join(dir, 'store'));
  const [h0, h1] = hashHalves(sha256(key));
  const id = index.find(h0, h1);
  if (id < 0) return null;
  const loc = index.location(id);
  return {
    pack: path.join(dir, 'store', 'packs', `${loc.pack}.pack`),
    offset: loc.offset,
    length: loc.length,
    body: loc.bytes !== loc.length ? path.join(dir, 'store', 'bodies', String(loc.pack), loc.offset.toString(36)) : null,
  };
}
