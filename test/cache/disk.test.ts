import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { crc32Digest, readMetaFile } from '../helpers/meta';
import { startTestProxy, viaProxy, type TestProxy } from '../helpers/net';
import { cacheEvents, startCaseOrigin, type CaseOrigin } from './origin';
import type { ConfigInput } from '../../src/core/config';

function tempDir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'cp-cache-'));
}

/** Every file under dir, relative, sorted. */
function filesUnder(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else out.push(path.relative(dir, p));
    }
  };
  walk(dir);
  return out.sort();
}

function bodyFiles(dir: string): string[] {
  return filesUnder(dir).filter((f) => f.endsWith('.body')).map((f) => path.join(dir, f));
}

async function withDisk(
  cache: ConfigInput['cache'],
  fn: (origin: CaseOrigin, start: () => Promise<TestProxy>, dir: string) => Promise<void>,
): Promise<void> {
  const dir = tempDir();
  const origin = await startCaseOrigin();
  const proxies: TestProxy[] = [];
  const start = async () => {
    const p = await startTestProxy({ cache: { dir, ...cache } });
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
    assert.ok(fs.existsSync(path.join(dir, 'index.json')), 'a clean close writes the index');
    const url = origin.url;
    await origin.close();
    p = await start();
    assert.ok(!fs.existsSync(path.join(dir, 'index.json')), 'the index is consumed on start');
    const small = await viaProxy(p.port, `${url}/max-age`);
    assert.equal(small.text, 'max-age v1');
    assert.match(String(small.headers['cache-status']), /^caching-proxy; hit; ttl=\d+$/);
    const big = await viaProxy(p.port, `${url}/big?size=3000000`);
    assert.equal(big.body.length, 3000000);
    assert.ok(big.body.equals(Buffer.alloc(3000000, 'v1')));
    assert.match(String(big.headers['cache-status']), /; hit; /);
    assert.equal(p.proxy.cache.list().length, 2);
    assert.equal(origin.requests.length, 2);
  }));

test('restart after a crash (no index written): the metadata files are scanned instead', () =>
  withDisk({}, async (origin, start, dir) => {
    let p = await start();
    await viaProxy(p.port, `${origin.url}/max-age`);
    await viaProxy(p.port, `${origin.url}/expires`);
    await p.close();
    fs.unlinkSync(path.join(dir, 'index.json'));
    fs.writeFileSync(path.join(dir, 'tmp', 'half-written.tmp'), 'partial body of a crashed write');
    p = await start();
    assert.deepEqual(fs.readdirSync(path.join(dir, 'tmp')), [], 'temp files are cleaned on start');
    const r = await viaProxy(p.port, `${origin.url}/expires`);
    assert.equal(r.text, 'expires body');
    assert.match(String(r.headers['cache-status']), /; hit; /);
    assert.equal(origin.count('/expires'), 1);
    const notice = p.events.find((e) => e.type === 'notice' && /2 entries loaded .* \(metadata scan\)/.test(e.message));
    assert.ok(notice, 'the start reports how many entries it found');
  }));

test('disk layout: body and metadata named by the key’s SHA-256, the body’s CRC-32 recorded, owner-only permissions', () =>
  withDisk({}, async (origin, start, dir) => {
    const p = await start();
    await viaProxy(p.port, `${origin.url}/max-age`);
    const files = filesUnder(dir).filter((f) => f.startsWith('entries'));
    assert.equal(files.length, 2);
    assert.match(files[0], /^entries\/[0-9a-f]{2}\/[0-9a-f]{64}\.body$/);
    assert.match(files[1], /^entries\/[0-9a-f]{2}\/[0-9a-f]{64}\.meta$/);
    for (const f of files) assert.equal(fs.statSync(path.join(dir, f)).mode & 0o777, 0o600, f);
    for (const d of [dir, path.join(dir, 'entries'), path.dirname(path.join(dir, files[0]))]) assert.equal(fs.statSync(d).mode & 0o777, 0o700, d);
    const metaText = fs.readFileSync(path.join(dir, files[1]), 'utf8');
    const [json, check] = metaText.split('\n');
    assert.equal(check, crc32Digest(json), 'the metadata’s own digest line');
    const meta = readMetaFile(path.join(dir, files[1]));
    assert.equal(meta.url, `${origin.url}/max-age`);
    assert.equal(meta.size, 10);
    assert.equal(meta.digest, crc32Digest('max-age v1'));
    assert.equal(meta.status, 200);
  }));

for (const damage of ['truncated', 'bit-flipped', 'deleted'] as const) {
  test(`a ${damage} body file is never served: the entry is dropped and refetched`, () =>
    withDisk({}, async (origin, start, dir) => {
      let p = await start();
      await viaProxy(p.port, `${origin.url}/max-age`);
      await p.close();
      const [file] = bodyFiles(dir);
      if (damage === 'truncated') fs.truncateSync(file, 4);
      else if (damage === 'deleted') fs.unlinkSync(file);
      else {
        const bytes = fs.readFileSync(file);
        bytes[3] ^= 0x01;
        fs.writeFileSync(file, bytes);
      }
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

test('metadata damaged so that it is still valid JSON (a header value changed) is caught by its digest line, not served', () =>
  withDisk({}, async (origin, start, dir) => {
    let p = await start();
    await viaProxy(p.port, `${origin.url}/max-age`);
    await p.close();
    const metaFile = path.join(dir, filesUnder(dir).find((f) => f.endsWith('.meta'))!);
    const text = fs.readFileSync(metaFile, 'utf8');
    assert.ok(text.includes('"max-age=60"'));
    fs.writeFileSync(metaFile, text.replace('"max-age=60"', '"max-age=90"'));
    p = await start();
    const r = await viaProxy(p.port, `${origin.url}/max-age`);
    assert.equal(r.headers['cache-control'], 'max-age=60');
    assert.equal(r.headers['cache-status'], 'caching-proxy; fwd=miss; stored');
    assert.deepEqual(cacheEvents(p, 'corrupt').map((e) => e.reason), ['metadata digest mismatch']);
  }));

/** Rewrites a stopped cache's entries as an earlier version stored them: one JSON text, a bare SHA-256 `sha256` field, no `digest`. */
function asStoredWithSha256(dir: string): void {
  const sha256 = (file: string) => createHash('sha256').update(fs.readFileSync(file)).digest('hex');
  const byHash = new Map<string, string>();
  for (const f of filesUnder(dir).filter((n) => n.endsWith('.meta'))) {
    const file = path.join(dir, f);
    const meta = readMetaFile(file);
    const digest = sha256(file.replace(/\.meta$/, '.body'));
    byHash.set(String(meta.digest), digest);
    delete meta.digest;
    meta.sha256 = digest;
    fs.writeFileSync(file, JSON.stringify(meta));
  }
  const indexFile = path.join(dir, 'index.json');
  const index = JSON.parse(fs.readFileSync(indexFile, 'utf8')) as { rows: unknown[][] };
  for (const row of index.rows) row[4] = byHash.get(String(row[4]));
  fs.writeFileSync(indexFile, JSON.stringify(index));
}

test('entries an earlier version stored with a SHA-256 are served after an upgrade, and still checked', () =>
  withDisk({ maxMemoryMB: 1 }, async (origin, start, dir) => {
    const size = 2_000_000;
    const small = `${origin.url}/max-age`;
    const large = `${origin.url}/big?size=${size}`;
    let p = await start();
    await viaProxy(p.port, small);
    await viaProxy(p.port, large);
    await p.close();
    asStoredWithSha256(dir);
    for (const index of [true, false]) {
      // With the clean index, and from the metadata files alone.
      if (!index) fs.rmSync(path.join(dir, 'index.json'));
      p = await start();
      for (const url of [small, large]) {
        const r = await viaProxy(p.port, url);
        assert.match(String(r.headers['cache-status']), /; hit; /, `${url} (index: ${index})`);
      }
      assert.equal(p.proxy.cache.list().length, 2);
      await p.close();
    }
    assert.equal(origin.count('/max-age'), 1);
    assert.equal(origin.count(`/big?size=${size}`), 1);
    // A damaged old-style body is caught by its SHA-256.
    for (const file of bodyFiles(dir)) {
      const bytes = fs.readFileSync(file);
      bytes[bytes.length - 2] ^= 0x01;
      fs.writeFileSync(file, bytes);
    }
    p = await start();
    for (const url of [small, large]) assert.match(String((await viaProxy(p.port, url)).headers['cache-status']), /fwd=miss; stored/, url);
    assert.deepEqual(
      cacheEvents(p, 'corrupt').map((e) => e.reason),
      ['body digest mismatch', 'body digest mismatch'],
    );
  }));

test('a damaged large body (streamed from disk) is checked before it is sent', () =>
  withDisk({ maxMemoryMB: 1 }, async (origin, start) => {
    const p = await start();
    const size = 2_000_000;
    await viaProxy(p.port, `${origin.url}/big?size=${size}`);
    const hit = await viaProxy(p.port, `${origin.url}/big?size=${size}`);
    assert.match(String(hit.headers['cache-status']), /; hit; /);
    assert.equal(p.proxy.cache.stats().memoryBytes, 0, 'too large for the memory tier');
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

test('corrupt metadata is dropped and refetched', () =>
  withDisk({}, async (origin, start, dir) => {
    let p = await start();
    await viaProxy(p.port, `${origin.url}/max-age`);
    await p.close();
    const meta = filesUnder(dir).find((f) => f.endsWith('.meta'))!;
    fs.writeFileSync(path.join(dir, meta), '{"v":1,"trunc');
    p = await start();
    const r = await viaProxy(p.port, `${origin.url}/max-age`);
    assert.equal(r.text, 'max-age v1');
    assert.equal(origin.count('/max-age'), 2);
  }));

test('an origin dying mid-body leaves nothing stored and no temp files', () =>
  withDisk({}, async (origin, start, dir) => {
    const p = await start();
    await assert.rejects(viaProxy(p.port, `${origin.url}/abort`));
    await assert.rejects(viaProxy(p.port, `${origin.url}/abort`));
    assert.equal(origin.count('/abort'), 2);
    assert.equal(p.proxy.cache.list().length, 0);
    await p.close();
    assert.deepEqual(filesUnder(path.join(dir, 'entries')), []);
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
    await p.close();
    assert.deepEqual(filesUnder(path.join(dir, 'entries')), []);
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
    assert.equal(bodyFiles(dir).length, 3);
    const key = p.proxy.cache.list().find((e) => e.url.endsWith('/expires'))!.key;
    assert.equal(await p.proxy.cache.purge(key), true);
    assert.equal(bodyFiles(dir).length, 2);
    await p.close();
    p = await start();
    assert.equal(p.proxy.cache.list().length, 2);
    assert.equal(await p.proxy.cache.purgeAll(), 2);
    assert.deepEqual(filesUnder(path.join(dir, 'entries')), []);
    await p.close();
    p = await start();
    assert.equal(p.proxy.cache.list().length, 0);
  }));

test('maxSizeMB bounds the disk tier: least recently used entries and their files go first', () =>
  withDisk({ maxSizeMB: 1, maxMemoryMB: 0.25 }, async (origin, start, dir) => {
    const p = await start();
    for (const n of [1, 2, 3]) await viaProxy(p.port, `${origin.url}/big?size=${400_000 + n}`);
    assert.deepEqual(cacheEvents(p, 'evicted').map((e) => e.url), [`${origin.url}/big?size=400001`]);
    assert.equal(p.proxy.cache.stats().bytes, 800_005);
    await p.close();
    assert.equal(bodyFiles(dir).length, 2);
    const again = await start();
    const r = await viaProxy(again.port, `${origin.url}/big?size=400003`);
    assert.match(String(r.headers['cache-status']), /; hit; /);
    assert.equal(origin.requests.length, 3);
  }));
