import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import CachePolicy from 'http-cache-semantics';
import { startTestProxy, viaProxy, type TestProxy } from '../helpers/net';
import { startCaseOrigin, type CaseOrigin } from './origin';
import type { CompactEntryMeta, EntryMeta } from '../../src/cache/entryMeta';
import { loadMeta } from '../../src/cache/entry';
import { entryFromStored, storedMeta, toRecord } from '../../src/cache/storedEntry';
import { decodeCompact, encodeCompact, headBlock, rawOf } from '../../src/cache/store/compactMeta';
import { decodePlain, encodePlain } from '../../src/cache/store/plainMeta';
import { recordForms } from '../../src/cache/store/records';
import { EntryStore } from '../../src/cache/store/entryStore';
import { hashKey } from '../../src/cache/store/keyIndex';
import { cacheEvents } from './origin';
import { locateEntry } from '../helpers/storeEntries';
import * as zlib from 'node:zlib';

async function withDisk(fn: (origin: CaseOrigin, start: () => Promise<TestProxy>, dir: string) => Promise<void>): Promise<void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cp-forms-'));
  const origin = await startCaseOrigin();
  const proxies: TestProxy[] = [];
  try {
    await fn(origin, async () => {
      const p = await startTestProxy({ cache: { dir } });
      proxies.push(p);
      return p;
    }, dir);
  } finally {
    for (const p of proxies) await p.close().catch(() => {});
    await origin.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** The form the store holds an entry's metadata in (JSON; compact, deflated as in session 9; plain), read with the proxy stopped. */
async function formOf(dir: string, key: string): Promise<'json' | 'deflated' | 'plain'> {
  const store = await EntryStore.open(dir, { maxBytes: 1e9 });
  try {
    const found = await store.get(hashKey(key));
    assert.ok(found, key);
    if (found.meta.v === 1) return 'json';
    return found.meta.packedPolicy !== undefined ? 'plain' : 'deflated';
  } finally {
    await store.close();
  }
}

/** Rewrites an entry's record in the JSON form, as versions before the compact form wrote every record. */
async function rewriteAsJson(dir: string, key: string): Promise<void> {
  const store = await EntryStore.open(dir, { maxBytes: 1e9 });
  try {
    const found = (await store.get(hashKey(key)))!;
    const meta = found.meta as CompactEntryMeta;
    assert.equal(meta.v, 2, 'stored in a compact form');
    const old: EntryMeta = { ...toRecord(meta), v: 1, statusMessage: meta.statusMessage, raw: rawOf(meta.head), policy: JSON.parse(meta.policyText) };
    await store.put(old, found.body, null);
  } finally {
    await store.close();
  }
}

/**
 * An entry stored in an older record form is served as a quick hit and a 304 to a client from
 * that record, then revalidated (one origin request), which rewrites it plain; and it is a hit
 * again after a restart.
 */
async function servedThenRewrittenPlain(origin: CaseOrigin, start: () => Promise<TestProxy>, dir: string, url: string, key: string): Promise<void> {
  let p = await start();
  const hit = await viaProxy(p.port, url);
  assert.equal(hit.status, 200);
  assert.equal(hit.text, 'etag-fresh v1');
  assert.equal(hit.headers.etag, '"v1"');
  assert.equal(hit.headers['cache-control'], 'max-age=60');
  assert.match(String(hit.headers['cache-status']), /^caching-proxy; hit; ttl=\d+$/);
  assert.match(String(hit.headers.age), /^\d+$/);
  const notModified = await viaProxy(p.port, url, { headers: { 'if-none-match': '"v1"' } });
  assert.equal(notModified.status, 304);
  assert.equal(origin.count('/etag-fresh'), 1, 'answered from the old record');
  const revalidated = await viaProxy(p.port, url, { headers: { 'cache-control': 'no-cache' } });
  assert.equal(revalidated.status, 200);
  assert.equal(revalidated.text, 'etag-fresh v1');
  assert.equal(origin.count('/etag-fresh'), 2, 'revalidated with the origin');
  assert.equal(origin.requests[1].headers['if-none-match'], '"v1"');
  await p.close();
  assert.equal(await formOf(dir, key), 'plain', 'the 304 rewrote it in the plain form');

  p = await start();
  const again = await viaProxy(p.port, url);
  assert.equal(again.text, 'etag-fresh v1');
  assert.equal(again.headers.etag, '"v1"');
  assert.match(String(again.headers['cache-status']), /^caching-proxy; hit; ttl=\d+$/);
  assert.equal(origin.count('/etag-fresh'), 2);
}

test('an entry stored in the JSON record form (before the compact form) is served: a quick hit, a 304 to a client, revalidation, which rewrites it plain', () =>
  withDisk(async (origin, start, dir) => {
    const url = `${origin.url}/etag-fresh`;
    const key = 'GET ' + url;
    const p = await start();
    assert.equal((await viaProxy(p.port, url)).headers['cache-status'], 'caching-proxy; fwd=miss; stored');
    await p.close();
    assert.equal(await formOf(dir, key), 'plain', 'new records are plain');
    await rewriteAsJson(dir, key);
    assert.equal(await formOf(dir, key), 'json');

    await servedThenRewrittenPlain(origin, start, dir, url, key);
  }));

test('compact metadata: every field back as written (variant key, Vary, no content type, non-ASCII values), the policy parsed only when asked', () => {
  const url = 'http://example.test/a?b=ü';
  const raw = ['Content-Length', '3', 'Cache-Control', 'max-age=60, must-revalidate', 'Vary', 'Accept-Encoding', 'X-Name', 'café: ünïcode', 'X-Empty', ''];
  const policy = new CachePolicy(
    { url, method: 'GET', headers: { host: 'example.test', 'accept-encoding': 'gzip' } },
    { status: 203, headers: { 'content-length': '3', 'cache-control': 'max-age=60, must-revalidate', vary: 'accept-encoding', age: '10' } },
    { shared: true },
  );
  const loaded = loadMeta(policy, 'Non-Authoritative', raw, { host: 'example.test', 'accept-encoding': 'gzip' });
  const record = { key: `GET ${url}\naccept-encoding: gzip`, hash: hashKey('x'), url, status: 203, size: 3, digest: 'crc32:00000001', storedAt: 1.5e12, freshUntil: 1.5e12 + 50_000, hits: 7, contentType: undefined, vary: ['accept-encoding'] };
  const meta = storedMeta(record, loaded) as CompactEntryMeta;
  assert.equal(meta.v, 2);
  const back = decodeCompact(encodeCompact(meta), record.hash);
  assert.deepEqual(back, { ...meta, contentType: undefined });
  assert.deepEqual(rawOf(back.head), raw);
  assert.equal(back.fastOk, loaded.fastOk);
  assert.equal(back.mustRevalidate, true);
  assert.equal(back.neverStale, true);
  assert.equal(back.ageZeroAt, loaded.ageZeroAt);
  const entry = entryFromStored(back, Buffer.from('abc'));
  assert.equal(entry.freshUntil, record.freshUntil);
  assert.deepEqual(entry.meta!.raw, raw);
  assert.equal(entry.meta!.policy.maxAge(), 60);
  assert.deepEqual(entry.meta!.requestHeaders, { host: 'example.test', 'accept-encoding': 'gzip' });
  assert.equal(entry.meta!.evalPolicy.satisfiesWithoutRevalidation({ url, method: 'GET', headers: { host: 'example.test', 'accept-encoding': 'gzip' } }), loaded.fastOk);
  const plain = decodeCompact(encodeCompact({ ...meta, key: 'GET ' + url, vary: null, contentType: 'text/plain' }), record.hash);
  assert.equal(plain.key, 'GET ' + url);
  assert.equal(plain.url, url);
  assert.equal(plain.vary, null);
  assert.equal(plain.contentType, 'text/plain');
  assert.deepEqual(decodeCompact(encodeCompact({ ...meta, vary: [] }), record.hash).vary, []);
  assert.throws(() => decodeCompact(encodeCompact(meta).subarray(0, 60), record.hash), /cut short/);
  // A value with a line break has no place in the block: that metadata is written as JSON.
  const odd = storedMeta(record, loadMeta(policy, 'OK', ['X-Odd', 'a\nb'], {}));
  assert.equal(odd.v, 1);
  assert.equal(headBlock(['A', 'b', 'C', '']), 'A: b\r\nC: \r\n');
});

/** Rewrites an entry's record in session 9's form: compact, deflated (record flag 4). */
async function rewriteAsDeflated(dir: string, key: string): Promise<void> {
  const store = await EntryStore.open(dir, { maxBytes: 1e9 });
  recordForms.compact = 'deflated';
  try {
    const found = (await store.get(hashKey(key)))!;
    await store.put(found.meta, found.body, null);
  } finally {
    recordForms.compact = 'plain';
    await store.close();
  }
}

test('a store of session 9 (compact records, deflated) is served by this version: a quick hit, a 304 to a client, revalidation, which rewrites it plain', () =>
  withDisk(async (origin, start, dir) => {
    const url = `${origin.url}/etag-fresh`;
    const key = 'GET ' + url;
    const p = await start();
    await viaProxy(p.port, url);
    await p.close();
    await rewriteAsDeflated(dir, key);
    assert.equal(await formOf(dir, key), 'deflated');

    await servedThenRewrittenPlain(origin, start, dir, url, key);
  }));

test('plain metadata: every field back as written (table codes, numbers, dates, digests, literals, non-ASCII), the policy packed until asked for', () => {
  const url = 'http://example.test/a?b=ü';
  const raw = [
    'Content-Type', 'application/json', 'content-length', '3', 'Cache-Control', 'public, max-age=600', 'Date', 'Thu, 03 Dec 2026 11:37:05 GMT',
    'Expires', 'Thu, 3 Dec 2026 11:37:05 GMT', 'X-Len', '0012', 'X-Big', '123456789012345678', 'Age', '0', 'X-Name', 'café: ünïcode', 'X-Empty', '',
    'x-ünï', 'v', 'Vary', 'Accept-Encoding', 'X-Max', 'max-age=', 'ETag', '"crc32:0000000g"', 'Via', '1.1 caching-proxy',
  ];
  const policy = new CachePolicy(
    { url, method: 'GET', headers: { host: 'example.test', 'accept-encoding': 'gzip' } },
    { status: 203, headers: { 'content-length': '3', 'cache-control': 'max-age=60, must-revalidate', vary: 'accept-encoding', age: '10' } },
    { shared: true },
  );
  const loaded = loadMeta(policy, 'Non-Authoritative', raw, { host: 'example.test', 'accept-encoding': 'gzip' });
  const record = { key: `GET ${url}\naccept-encoding: gzip`, hash: hashKey('x'), url, status: 203, size: 3, digest: 'crc32:00ab00ff', storedAt: 1.5e12, freshUntil: 1.5e12 + 50_000, hits: 7, contentType: 'text/plain; x=ü', vary: ['accept-encoding'] };
  const meta = storedMeta(record, loaded) as CompactEntryMeta;
  const encoded = encodePlain(meta);
  const back = decodePlain(encoded, record.hash);
  assert.ok(back.packedPolicy.length < meta.policyText.length / 2, 'the policy deflated');
  for (const name of ['key', 'hash', 'url', 'status', 'size', 'digest', 'storedAt', 'freshUntil', 'hits', 'contentType', 'vary', 'statusMessage', 'head', 'fastOk', 'mustRevalidate', 'neverStale', 'ageZeroAt', 'policyText'] as const) {
    assert.deepEqual(back[name], meta[name], name);
  }
  assert.deepEqual(rawOf(back.head), raw);
  const entry = entryFromStored(back, Buffer.from('abc'));
  assert.deepEqual(entry.meta!.raw, raw);
  assert.equal(entry.meta!.policyText, meta.policyText);
  assert.equal(entry.meta!.policy.maxAge(), 60);
  assert.deepEqual(entry.meta!.requestHeaders, { host: 'example.test', 'accept-encoding': 'gzip' });
  const lazy = entryFromStored(decodePlain(encoded, record.hash), null);
  assert.deepEqual(lazy.meta!.requestHeaders, { host: 'example.test', 'accept-encoding': 'gzip' }, 'the packed policy parsed when first asked for');
  assert.equal(lazy.meta!.policyText, meta.policyText);

  const plain = decodePlain(encodePlain({ ...meta, key: 'GET ' + url, vary: null, contentType: undefined, digest: 'ab'.repeat(32), statusMessage: 'OK' }), record.hash);
  assert.equal(plain.key, 'GET ' + url);
  assert.equal(plain.url, url);
  assert.equal(plain.vary, null);
  assert.equal(plain.contentType, undefined);
  assert.equal(plain.digest, 'ab'.repeat(32));
  assert.equal(plain.statusMessage, 'OK');
  assert.deepEqual(decodePlain(encodePlain({ ...meta, vary: [] }), record.hash).vary, []);

  // Damage that a record's CRC would not see (a writer's bug): refused, not read as something else.
  assert.throws(() => decodePlain(encoded.subarray(0, 60), record.hash), /cut short/);
  assert.throws(() => decodePlain(Buffer.concat([encoded, Buffer.from([0])]), record.hash), /trailing bytes/);
  const badCode = Buffer.from(encoded);
  badCode[40 + 1 + Buffer.byteLength(meta.key) + 1 + Buffer.byteLength(url)] = 255;
  assert.throws(() => decodePlain(badCode, record.hash), /unreadable/);
  const badForm = Buffer.from(encoded);
  badForm[0] = 2;
  assert.throws(() => decodePlain(badForm, record.hash), /unreadable/);
});

test('a plain record whose metadata does not parse (its CRC made to match) is reported and dropped, never served: the response is fetched again', () =>
  withDisk(async (origin, start, dir) => {
    const url = `${origin.url}/max-age`;
    const key = 'GET ' + url;
    let p = await start();
    await viaProxy(p.port, url);
    await p.close();
    assert.equal(await formOf(dir, key), 'plain');
    const at = locateEntry(dir, key)!;
    const pack = fs.readFileSync(at.pack);
    const rec = pack.subarray(at.offset, at.offset + at.length);
    // The digest's code, after the fixed fields and the key (a short key: one length byte): no code is 255.
    const digestAt = 52 + 40 + 1 + Buffer.byteLength(key);
    assert.equal(rec[digestAt], 254, 'a crc32 digest');
    rec[digestAt] = 255;
    rec.writeUInt32LE((zlib as unknown as { crc32: (b: Uint8Array) => number }).crc32(rec.subarray(12)), 8);
    fs.writeFileSync(at.pack, pack);

    p = await start();
    const r = await viaProxy(p.port, url);
    assert.equal(r.text, 'max-age v1');
    assert.equal(r.headers['cache-status'], 'caching-proxy; fwd=miss; stored');
    assert.equal(origin.count('/max-age'), 2);
    assert.deepEqual(cacheEvents(p, 'corrupt').map((e) => e.reason), ['metadata unreadable']);
    const again = await viaProxy(p.port, url);
    assert.match(String(again.headers['cache-status']), /; hit; /);
    assert.equal(origin.count('/max-age'), 2);
  }));
