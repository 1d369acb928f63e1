import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { filesUnder } from '../helpers/files';
import { startTestProxy, viaProxy, waitFor, type TestProxy } from '../helpers/net';
import { bodyOf, crc, writeLegacyEntry, writeLegacyIndex } from '../helpers/storeEntries';
import { cacheEvents, startCaseOrigin, type CaseOrigin } from './origin';
import type { ConfigInput } from '../../src/core/config';
import { EntryStore } from '../../src/cache/store/entryStore';
import { hashKey } from '../../src/cache/store/keyIndex';

function tempDir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'cp-cache-'));
}

/** Body files of entries too large to be packed. */
function bodyFiles(dir: string): string[] {
  return filesUnder(path.join(dir, 'store', 'bodies'));
}

function packFiles(dir: string): string[] {
  return filesUnder(path.join(dir, 'store', 'packs'));
}

/** Flips one bit of the first pack record holding `text` (a small body is stored as it is, after its metadata). */
function damagePacked(dir: string, text: string, at: (start: number, file: string) => void = (start, file) => flipBit(file, start + 3)): void {
  for (const file of packFiles(dir)) {
    const start = fs.readFileSync(file).indexOf(text);
    if (start >= 0) return at(start, file);
  }
  throw new Error(`no pack holds ${JSON.stringify(text)}`);
}

function flipBit(file: string, at: number): void {
  const bytes = fs.readFileSync(file);
  bytes[at] ^= 0x01;
  fs.writeFileSync(file, bytes);
}

/** A stopped cache's directory copied as it is while the proxy still runs: what a SIGKILL leaves. */
function crashImage(dir: string): string {
  const copy = tempDir();
  fs.cpSync(dir, copy, { recursive: true });
  return copy;
}

async function withDisk(
  cache: ConfigInput['cache'],
  fn: (origin: CaseOrigin, start: (at?: string) => Promise<TestProxy>, dir: string) => Promise<void>,
): Promise<void> {
  const dir = tempDir();
  const origin = await startCaseOrigin();
  const proxies: TestProxy[] = [];
  const start = async (at = dir) => {
    const p = await startTestProxy({ cache: { dir: at, ...cache } });
    proxies.push(p);
    return p;
  };
  try {
    await fn(origin, start, dir);
  } finally {
    for (const p of proxies) await p.close().catch(() => {});
    await origin.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

test('restart: entries stored before a clean shutdown are hits afterwards, without the origin', () =>
  withDisk({}, async (origin, start, dir) => {
    let p = await start();
    await viaProxy(p.port, `${origin.url}/max-age`);
    await viaProxy(p.port, `${origin.url}/big?size=3000000`);
    await p.close();
    assert.ok(fs.existsSync(path.join(dir, 'store', 'index.snap')), 'a clean close writes the index snapshot');
    const url = origin.url;
    await origin.close();
    p = await start();
    const small = await viaProxy(p.port, `${url}/max-age`);
    assert.equal(small.text, 'max-age v1');
    assert.match(String(small.headers['cache-status']), /^caching-proxy; hit; ttl=\d+$/);
    const big = await viaProxy(p.port, `${url}/big?size=3000000`);
    assert.equal(big.body.length, 3000000);
    assert.ok(big.body.equals(Buffer.alloc(3000000, 'v1')));
    assert.match(String(big.headers['cache-status']), /; hit; /);
    assert.equal((await p.proxy.cache.list()).length, 2);
    assert.equal(origin.requests.length, 2);
    const notice = p.events.find((e) => e.type === 'notice' && /2 entries in .*index read in \d+ ms \(snapshot\)/.test(e.message));
    assert.ok(notice, 'the start reports the entries and where their index came from');
  }));

test('restart after a crash (no clean close): the index comes back from its journal, nothing is scanned', () =>
  withDisk({}, async (origin, start, dir) => {
    const p = await start();
    await viaProxy(p.port, `${origin.url}/max-age`);
    await viaProxy(p.port, `${origin.url}/expires`);
    const image = crashImage(dir);
    fs.writeFileSync(path.join(image, 'tmp', 'half-written.tmp'), 'partial body of a crashed write');
    try {
      const after = await start(image);
      assert.deepEqual(fs.readdirSync(path.join(image, 'tmp')), [], 'temp files are cleaned on start');
      const r = await viaProxy(after.port, `${origin.url}/expires`);
      assert.equal(r.text, 'expires body');
      assert.match(String(r.headers['cache-status']), /; hit; /);
      assert.equal(origin.count('/expires'), 1);
      const notice = after.events.find((e) => e.type === 'notice' && /2 entries in .* \(journal of 2 records\)/.test(e.message));
      assert.ok(notice, 'the start reports how many entries it found, from the journal');
    } finally {
      fs.rmSync(image, { recursive: true, force: true });
    }
  }));

test('disk layout: small entries packed (metadata and body in one record with its CRC-32), owner-only permissions', () =>
  withDisk({}, async (origin, start, dir) => {
    const p = await start();
    await viaProxy(p.port, `${origin.url}/max-age`);
    await p.close();
    const files = filesUnder(dir).map((f) => path.relative(dir, f)).sort();
    assert.deepEqual(files, ['store/index.snap', 'store/journal.1', 'store/packs/0.pack']);
    for (const f of files) assert.equal(fs.statSync(path.join(dir, f)).mode & 0o777, 0o600, f);
    for (const d of [dir, path.join(dir, 'store'), path.join(dir, 'store', 'packs'), path.join(dir, 'tmp')]) assert.equal(fs.statSync(d).mode & 0o777, 0o700, d);
    const store = await EntryStore.open(dir, { maxBytes: 1e9 });
    try {
      const found = await store.get(hashKey(`GET ${origin.url}/max-age`));
      assert.ok(found);
      assert.equal(found.meta.url, `${origin.url}/max-age`);
      assert.equal(found.meta.size, 10);
      assert.equal(found.meta.digest, crc('max-age v1'));
      assert.equal(found.meta.status, 200);
      assert.equal(found.body?.toString(), 'max-age v1');
    } finally {
      await store.close();
    }
  }));

for (const damage of ['truncated', 'bit-flipped', 'deleted'] as const) {
  test(`a ${damage} pack is never served from: the entry is dropped and refetched`, () =>
    withDisk({}, async (origin, start, dir) => {
      let p = await start();
      await viaProxy(p.port, `${origin.url}/max-age`);
      await p.close();
      const [file] = packFiles(dir);
      if (damage === 'truncated') fs.truncateSync(file, fs.statSync(file).size - 4);
      else if (damage === 'deleted') fs.unlinkSync(file);
      else damagePacked(dir, 'max-age v1');
      p = await start();
      const r = await viaProxy(p.port, `${origin.url}/max-age`);
      assert.equal(r.text, 'max-age v1');
      assert.equal(r.headers['cache-status'], 'caching-proxy; fwd=miss; stored');
      assert.equal(origin.count('/max-age'), 2);
      assert.equal(cacheEvents(p, 'corrupt').length, 1);
      const again = await viaProxy(p.port, `${origin.url}/max-age`);
      assert.match(String(again.headers['cache-status']), /; hit; /);
      assert.equal(origin.count('/max-age'), 2);
    }));
}

test('metadata damaged in its record (a header value changed) is caught by the record’s CRC-32, not served', () =>
  withDisk({}, async (origin, start, dir) => {
    let p = await start();
    await viaProxy(p.port, `${origin.url}/max-age`);
    await p.close();
    // The metadata sits just before the body in the record.
    damagePacked(dir, 'max-age v1', (bodyAt, file) => flipBit(file, bodyAt - 20));
    p = await start();
    const r = await viaProxy(p.port, `${origin.url}/max-age`);
    assert.equal(r.headers['cache-control'], 'max-age=60');
    assert.equal(r.headers['cache-status'], 'caching-proxy; fwd=miss; stored');
    assert.deepEqual(cacheEvents(p, 'corrupt').map((e) => e.reason), ['record checksum mismatch']);
  }));

test('a cache of the previous layout is migrated on first start: its entries (SHA-256 digests too) are hits, damaged ones refetched', () =>
  withDisk({ maxMemoryMB: 1 }, async (origin, start, dir) => {
    const urls = [`${origin.url}/max-age`, `${origin.url}/big?size=2000000`, `${origin.url}/expires`];
    const bodies = [Buffer.from('max-age v1'), Buffer.alloc(2_000_000, 'v1'), Buffer.from('expires body')];
    const metas = urls.map((u, i) => writeLegacyEntry(dir, u, bodies[i]));
    // An entry stored before digests had a kind: a bare SHA-256 in `sha256`.
    const old = metas[0];
    const metaFile = path.join(dir, 'entries', old.hash.slice(0, 2), `${old.hash}.meta`);
    const legacy = { ...old, sha256: createHash('sha256').update(bodies[0]).digest('hex') } as Record<string, unknown>;
    delete legacy.digest;
    fs.writeFileSync(metaFile, JSON.stringify(legacy));
    writeLegacyIndex(dir, metas);
    // One damaged body: the migration must not carry it over.
    flipBit(path.join(dir, 'entries', metas[2].hash.slice(0, 2), `${metas[2].hash}.body`), 2);
    const p = await start();
    for (const url of urls.slice(0, 2)) {
      const r = await viaProxy(p.port, url);
      assert.match(String(r.headers['cache-status']), /; hit; /, url);
    }
    assert.equal((await viaProxy(p.port, urls[2])).headers['cache-status'], 'caching-proxy; fwd=miss; stored');
    assert.equal(origin.requests.length, 1, 'only the damaged one was fetched');
    await p.close();
    assert.ok(!fs.existsSync(path.join(dir, 'entries')), 'the old layout is gone');
    assert.equal(bodyOf('x', 0).length, 0);
  }));

test('a damaged large body (streamed from disk) is checked before it is sent', () =>
  withDisk({ maxMemoryMB: 1 }, async (origin, start) => {
    const p = await start();
    const size = 2_000_000;
    await viaProxy(p.port, `${origin.url}/big?size=${size}`);
    const hit = await viaProxy(p.port, `${origin.url}/big?size=${size}`);
    assert.match(String(hit.headers['cache-status']), /; hit; /);
    assert.ok(p.proxy.cache.stats().memoryBytes < size, 'too large for the memory tier');
    const [file] = bodyFiles(p.proxy.config.cache.dir!);
    const fd = fs.openSync(file, 'r+');
    fs.writeSync(fd, Buffer.from('X'), 0, 1, size - 10);
    fs.closeSync(fd);
    const r = await viaProxy(p.port, `${origin.url}/big?size=${size}`);
    assert.equal(r.body.length, size);
    assert.ok(r.body.equals(Buffer.alloc(size, 'v1')), 'the refetched body, not the damaged one');
    assert.equal(origin.count(`/big?size=${size}`), 2);
    assert.equal(cacheEvents(p, 'corrupt')[0].reason, 'body digest mismatch');
  }));

test('a large body trusted after verification is still re-checked once the file changes', () =>
  withDisk({ maxMemoryMB: 1 }, async (origin, start) => {
    const p = await start();
    const size = 2_000_000;
    const url = `${origin.url}/big?size=${size}`;
    await viaProxy(p.port, url);
    // Past the racy window, a verified hit marks the file as unchanged-since-verified.
    await new Promise((r) => setTimeout(r, 1100));
    for (let i = 0; i < 2; i++) assert.match(String((await viaProxy(p.port, url)).headers['cache-status']), /; hit; /);
    const [file] = bodyFiles(p.proxy.config.cache.dir!);
    const fd = fs.openSync(file, 'r+');
    fs.writeSync(fd, Buffer.from('X'), 0, 1, 10);
    fs.closeSync(fd);
    const r = await viaProxy(p.port, url);
    assert.ok(r.body.equals(Buffer.alloc(size, 'v1')), 'the refetched body, not the damaged one');
    assert.equal(origin.count(`/big?size=${size}`), 2);
    assert.equal(cacheEvents(p, 'corrupt')[0].reason, 'body digest mismatch');
  }));

test('a damaged index snapshot: the proxy starts (empty), says so, and caches again', () =>
  withDisk({}, async (origin, start, dir) => {
    let p = await start();
    await viaProxy(p.port, `${origin.url}/max-age`);
    await p.close();
    flipBit(path.join(dir, 'store', 'index.snap'), 30);
    p = await start();
    // The index loads while the proxy serves; the notice comes once it is in.
    await waitFor(() => p.events.some((e) => e.type === 'notice' && e.level === 'warn' && /index snapshot .* is damaged/.test(e.message)), 'the start says so', 60_000);
    const r = await viaProxy(p.port, `${origin.url}/max-age`);
    assert.equal(r.text, 'max-age v1');
    assert.equal(origin.count('/max-age'), 2);
    assert.match(String((await viaProxy(p.port, `${origin.url}/max-age`)).headers['cache-status']), /; hit; /);
  }));

test('an origin dying mid-body leaves nothing stored and no temp files', () =>
  withDisk({}, async (origin, start, dir) => {
    const p = await start();
    await assert.rejects(viaProxy(p.port, `${origin.url}/abort`));
    await assert.rejects(viaProxy(p.port, `${origin.url}/abort`));
    assert.equal(origin.count('/abort'), 2);
    assert.equal((await p.proxy.cache.list()).length, 0);
    assert.equal(p.proxy.cache.stats().entries, 0);
    await p.close();
    assert.deepEqual(bodyFiles(dir), []);
    assert.deepEqual(fs.readdirSync(path.join(dir, 'tmp')), []);
    assert.equal(cacheEvents(p, 'not-stored')[0].reason, 'incomplete-body');
  }));

test('a body over maxObjectSizeMB is passed through whole and not stored (declared or discovered while streaming)', () =>
  withDisk({ maxObjectSizeMB: 0.5 }, async (origin, start, dir) => {
    const p = await start();
    for (const path of ['/big?size=1000000', '/chunked-big?size=1048576']) {
      const a = await viaProxy(p.port, origin.url + path);
      assert.equal(a.body.length, path.includes('chunked') ? 1048576 : 1000000);
      await viaProxy(p.port, origin.url + path);
      assert.equal(origin.count(path), 2, path);
    }
    assert.deepEqual(cacheEvents(p, 'not-stored').map((e) => e.reason), ['too-large', 'too-large', 'too-large', 'too-large']);
    assert.equal(p.proxy.cache.stats().entries, 0);
    await p.close();
    assert.deepEqual(bodyFiles(dir), []);
    assert.deepEqual(fs.readdirSync(path.join(dir, 'tmp')), []);
  }));

test('a cache dir that cannot be used: one notice, and the proxy keeps proxying (memory only)', async () => {
  const parent = tempDir();
  const blocker = path.join(parent, 'a-file');
  fs.writeFileSync(blocker, 'not a directory');
  const origin = await startCaseOrigin();
  const p = await startTestProxy({ cache: { dir: path.join(blocker, 'cache') } });
  try {
    for (let i = 0; i < 3; i++) assert.equal((await viaProxy(p.port, `${origin.url}/max-age`)).status, 200);
    assert.equal(origin.count('/max-age'), 1, 'the memory tier still caches');
    const notices = p.events.filter((e) => e.type === 'notice' && e.level === 'warn');
    assert.equal(notices.length, 1);
    assert.match((notices[0] as { message: string }).message, /cannot write to .*a-file/);
  } finally {
    await p.close();
    await origin.close();
    fs.rmSync(parent, { recursive: true, force: true });
  }
});

test('disk writes failing at run time: one notice for many requests, responses still complete', () =>
  withDisk({}, async (origin, start, dir) => {
    const p = await start();
    fs.rmSync(path.join(dir, 'tmp'), { recursive: true });
    for (let i = 0; i < 4; i++) {
      const r = await viaProxy(p.port, `${origin.url}/big?size=${100_000 + i}`);
      assert.equal(r.body.length, 100_000 + i);
    }
    const notices = p.events.filter((e) => e.type === 'notice' && e.level === 'warn');
    assert.equal(notices.length, 1);
    // Kept in memory instead: a repeat is a hit.
    const again = await viaProxy(p.port, `${origin.url}/big?size=100000`);
    assert.match(String(again.headers['cache-status']), /; hit; /);
    assert.equal(origin.requests.length, 4);
  }));

test('updateConfig keeps stored entries; a new dir switches to that store', () =>
  withDisk({}, async (origin, start, dir) => {
    const p = await start();
    await viaProxy(p.port, `${origin.url}/max-age`);
    const config = p.proxy.config;
    await p.proxy.update({ ...config, cache: { ...config.cache, maxEntries: 50, ttl: 10, maxMemoryMB: 8 } });
    const hit = await viaProxy(p.port, `${origin.url}/max-age`);
    assert.match(String(hit.headers['cache-status']), /; hit; /);
    assert.equal(origin.count('/max-age'), 1);
    const other = tempDir();
    try {
      await p.proxy.update({ ...config, cache: { ...config.cache, dir: other } });
      const miss = await viaProxy(p.port, `${origin.url}/max-age`);
      assert.equal(miss.headers['cache-status'], 'caching-proxy; fwd=miss; stored');
      await p.proxy.update({ ...config, cache: { ...config.cache, dir } });
      const back = await viaProxy(p.port, `${origin.url}/max-age`);
      assert.match(String(back.headers['cache-status']), /; hit; /, 'the first dir kept its entries');
      assert.equal(origin.count('/max-age'), 2);
    } finally {
      fs.rmSync(other, { recursive: true, force: true });
    }
  }));

/** A really full disk needs a tiny tmpfs: only possible as root on Linux, skipped elsewhere. */
function mountTinyTmpfs(): string | null {
  if (process.platform !== 'linux' || process.getuid?.() !== 0) return null;
  const dir = tempDir();
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=600k', 'tmpfs', dir], { stdio: 'ignore' });
    return dir;
  } catch {
    fs.rmSync(dir, { recursive: true, force: true });
    return null;
  }
}

test('a disk that fills up: every response still complete, one notice, entries kept in memory', async (t) => {
  const mount = mountTinyTmpfs();
  if (!mount) return t.skip('needs root to mount a 600 KB tmpfs');
  const origin = await startCaseOrigin();
  const p = await startTestProxy({ cache: { dir: path.join(mount, 'cache') } });
  // The size limit keeps the cache within half the free space it saw at start: something else fills the rest.
  fs.writeFileSync(path.join(mount, 'filler'), Buffer.alloc(400 * 1024));
  try {
    for (let i = 0; i < 8; i++) {
      const r = await viaProxy(p.port, `${origin.url}/big?size=${150_000 + i}`);
      assert.equal(r.body.length, 150_000 + i);
    }
    const notices = p.events.filter((e) => e.type === 'notice' && e.level === 'warn');
    assert.equal(notices.length, 1);
    assert.match((notices[0] as { message: string }).message, /the disk is full/);
    const again = await viaProxy(p.port, `${origin.url}/big?size=150007`);
    assert.match(String(again.headers['cache-status']), /; hit; /);
    assert.equal(origin.requests.length, 8);
    assert.deepEqual(fs.readdirSync(path.join(mount, 'cache', 'tmp')), [], 'no partial temp files left behind');
  } finally {
    await p.close();
    await origin.close();
    execFileSync('umount', [mount]);
    fs.rmSync(mount, { recursive: true, force: true });
  }
});

test('a read-only cache dir: one notice, proxying and memory caching go on', async (t) => {
  const mount = mountTinyTmpfs();
  if (!mount) return t.skip('needs root to mount a tmpfs');
  fs.mkdirSync(path.join(mount, 'cache'));
  execFileSync('mount', ['-o', 'remount,ro', mount]);
  const origin = await startCaseOrigin();
  const p = await startTestProxy({ cache: { dir: path.join(mount, 'cache') } });
  try {
    for (let i = 0; i < 3; i++) assert.equal((await viaProxy(p.port, `${origin.url}/max-age`)).text, 'max-age v1');
    assert.equal(origin.count('/max-age'), 1);
    const notices = p.events.filter((e) => e.type === 'notice' && e.level === 'warn');
    assert.equal(notices.length, 1);
    assert.match((notices[0] as { message: string }).message, /not writable/);
  } finally {
    await p.close();
    await origin.close();
    execFileSync('umount', [mount]);
    fs.rmSync(mount, { recursive: true, force: true });
  }
});

test('purge and purgeAll remove the files too, and purged entries stay gone after a restart', () =>
  withDisk({}, async (origin, start, dir) => {
    let p = await start();
    await viaProxy(p.port, `${origin.url}/max-age`);
    await viaProxy(p.port, `${origin.url}/expires`);
    await viaProxy(p.port, `${origin.url}/s-maxage`);
    await viaProxy(p.port, `${origin.url}/big?size=300000`);
    assert.equal(bodyFiles(dir).length, 1);
    const key = (await p.proxy.cache.list()).find((e) => e.url.endsWith('/expires'))!.key;
    assert.equal(await p.proxy.cache.purge(key), true);
    const bigKey = (await p.proxy.cache.list()).find((e) => e.url.includes('/big'))!.key;
    assert.equal(await p.proxy.cache.purge(bigKey), true);
    assert.equal(bodyFiles(dir).length, 0, 'the body file goes with its entry');
    await p.close();
    p = await start();
    assert.equal((await p.proxy.cache.list()).length, 2);
    assert.equal(await p.proxy.cache.purgeAll(), 2);
    await p.close();
    p = await start();
    assert.equal((await p.proxy.cache.list()).length, 0);
  }));

test('maxSizeMB bounds the disk tier: least recently used entries and their files go first', () =>
  withDisk({ maxSizeMB: 1, maxMemoryMB: 0.25 }, async (origin, start, dir) => {
    const p = await start();
    for (const n of [1, 2, 3]) await viaProxy(p.port, `${origin.url}/big?size=${400_000 + n}`);
    assert.deepEqual(cacheEvents(p, 'evicted').map((e) => e.url), [`${origin.url}/big?size=400001`]);
    const bytes = p.proxy.cache.stats().bytes;
    assert.ok(bytes >= 800_005 && bytes < 800_005 + 4096, `two bodies and their records: ${bytes}`);
    await p.close();
    assert.equal(bodyFiles(dir).length, 2);
    const again = await start();
    const r = await viaProxy(again.port, `${origin.url}/big?size=400003`);
    assert.match(String(r.headers['cache-status']), /; hit; /);
    assert.equal(origin.requests.length, 3);
  }));
