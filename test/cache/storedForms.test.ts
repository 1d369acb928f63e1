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
import { EntryStore } from '../../src/cache/store/entryStore';
import { hashKey } from '../../src/cache/store/keyIndex';

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

/** The form the store holds an entry's metadata in (1: JSON, 2: compact), read with the proxy stopped. */
async function formOf(dir: string, key: string): Promise<number> {
  const store = await EntryStore.open(dir, { maxBytes: 1e9 });
  try {
    const found = await store.get(hashKey(key));
    assert.ok(found, key);
    return found.meta.v;
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
    assert.equal(meta.v, 2, 'stored in the compact form');
    const old: EntryMeta = { ...toRecord(meta), v: 1, statusMessage: meta.statusMessage, raw: rawOf(meta.head), policy: JSON.parse(meta.policyText) };
    await store.put(old, found.body, null);
  } finally {
    await store.close();
  }
}

test('an entry stored in the JSON record form (before the compact form) is served: a quick hit, a 304 to a client, revalidation, which rewrites it compact', () =>
  withDisk(async (origin, start, dir) => {
    const url = `${origin.url}/etag-fresh`;
    const key = 'GET ' + url;
    let p = await start();
    assert.equal((await viaProxy(p.port, url)).headers['cache-status'], 'caching-proxy; fwd=miss; stored');
    await p.close();
    assert.equal(await formOf(dir, key), 2, 'new records are compact');
    await rewriteAsJson(dir, key);
    assert.equal(await formOf(dir, key), 1);

    p = await start();
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
    assert.equal(await formOf(dir, key), 2, 'the 304 rewrote it in the compact form');

    p = await start();
    const again = await viaProxy(p.port, url);
    assert.equal(again.text, 'etag-fresh v1');
    assert.match(String(again.headers['cache-status']), /^caching-proxy; hit; ttl=\d+$/);
    assert.equal(origin.count('/etag-fresh'), 2);
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
