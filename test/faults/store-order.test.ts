import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { IndexJournal } from '../../src/cache/store/journal';
import { hashHalves, hashKey, type KeyIndex } from '../../src/cache/store/keyIndex';
import { waitFor } from '../helpers/net';
import { bodyOf, writeLegacyEntry, writeLegacyIndex } from '../helpers/storeEntries';
import { filesUnder } from '../helpers/files';
import { spawnProxy, type ChildProxy } from './lib/child';

/**
 * Least-recently-used order and the size limit across restarts and SIGKILL, through the real
 * CLI on a real cache directory, as a user sees them: which URLs are still hits (Cache-Status)
 * once the cache has filled past its limit, and how many bytes it holds.
 *
 * The guarantee tested: a use (a hit) is written to the store's journal with the next touch
 * flush (once a second); a use older than that survives a SIGKILL, and every use survives a
 * clean stop. A use in the last second before a SIGKILL may be forgotten (the entry keeps its
 * older place), so the tests wait for the flush itself (the journal on disk, read as the next
 * start would read it), never for a time.
 */

const BODY = 4096;

function bodyFor(p: string): Buffer {
  const seed = createHash('sha256').update(p).digest('hex');
  return Buffer.from(seed.repeat(Math.ceil(BODY / seed.length)).slice(0, BODY));
}

interface Origin {
  url: string;
  /** Requests the origin answered, by path. */
  asked: Map<string, number>;
  close(): Promise<void>;
}

async function startOrigin(): Promise<Origin> {
  const asked = new Map<string, number>();
  const server = http.createServer((req, res) => {
    const p = req.url ?? '/';
    asked.set(p, (asked.get(p) ?? 0) + 1);
    const body = bodyFor(p);
    res.writeHead(200, { 'Content-Type': 'application/octet-stream', 'Content-Length': body.length, 'Cache-Control': 'max-age=3600' });
    res.end(body);
  });
  server.keepAliveTimeout = 1000;
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    url,
    asked,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

interface Answer {
  status: number;
  body: Buffer;
  cacheStatus: string;
}

function get(proxyPort: number, url: string, headers: http.OutgoingHttpHeaders = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port: proxyPort, path: url, headers: { host: new URL(url).host, ...headers }, agent: false });
    req.on('response', (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks), cacheStatus: String(res.headers['cache-status'] ?? '') }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

/** Whether the proxy serves the URL from its cache without asking the origin (and without storing anything if it does not). */
async function isHit(proxy: ChildProxy, origin: Origin, p: string, expected = bodyFor(p)): Promise<boolean> {
  const r = await get(proxy.port, origin.url + p, { 'cache-control': 'only-if-cached' });
  if (r.status === 504) return false;
  assert.equal(r.status, 200, `${p}: ${r.status} ${r.cacheStatus}`);
  assert.match(r.cacheStatus, /\bhit\b/, `${p}: served from the cache`);
  assert.ok(r.body.equals(expected), `${p}: the body intact`);
  return true;
}

/** The index as the next start would read it (snapshot and journals on disk; read-only, beside the running proxy). */
function indexOnDisk(dir: string): KeyIndex {
  return IndexJournal.inspect(path.join(dir, 'store'));
}

const halvesOf = (origin: Origin, p: string) => hashHalves(hashKey(`GET ${origin.url}${p}`));

/** Paths in the index's LRU order (oldest first), among `paths`. */
function orderOnDisk(dir: string, origin: Origin, paths: string[]): string[] {
  const index = indexOnDisk(dir);
  const byId = new Map<number, string>();
  for (const p of paths) {
    const id = index.find(...halvesOf(origin, p));
    if (id >= 0) byId.set(id, p);
  }
  return [...index.oldestFirst()].filter((id) => byId.has(id)).map((id) => byId.get(id)!);
}

/** Waits until the store's journal on disk has every one of `paths` (stored, durable). */
async function untilStored(dir: string, origin: Origin, paths: string[]): Promise<void> {
  await waitFor(() => {
    const index = indexOnDisk(dir);
    return paths.every((p) => index.find(...halvesOf(origin, p)) >= 0);
  }, `${paths.length} entries in the journal`, 30_000);
}

const totalAsked = (origin: Origin) => [...origin.asked.values()].reduce((a, b) => a + b, 0);
const item = (i: number) => `/item/${i}`;
const range = (from: number, to: number) => Array.from({ length: to - from }, (_, i) => item(from + i));

async function fill(proxy: ChildProxy, origin: Origin, paths: string[]): Promise<void> {
  for (const p of paths) {
    const r = await get(proxy.port, origin.url + p);
    assert.equal(r.status, 200);
    assert.ok(r.body.equals(bodyFor(p)), `${p}: intact`);
  }
}

/** Bytes the entries account for (what the size limit bounds), from the index on disk. */
const accountedBytes = (dir: string) => indexOnDisk(dir).totalBytes;

/** Bytes of the store's pack and body files (live records and garbage not yet compacted). */
function fileBytes(dir: string): number {
  return filesUnder(path.join(dir, 'store')).filter((f) => f.includes(`${path.sep}packs${path.sep}`) || f.includes(`${path.sep}bodies${path.sep}`)).reduce((n, f) => n + fs.statSync(f).size, 0);
}

test('LRU order survives a clean restart and a SIGKILL: entries hit before either are kept when the cache fills past its limit, the least recently used go first', async () => {
  const origin = await startOrigin();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'faults-lru-'));
  const limitMB = 1;
  const args = ['--cache-dir', dir, '--max-size-mb', String(limitMB), '--log-level', 'warn'];
  let proxy = await spawnProxy(args);
  try {
    // 200 entries of about 4.4 KB: about 85% of the 1 MiB limit.
    const first = range(0, 200);
    await fill(proxy, origin, first);
    await untilStored(dir, origin, first);
    assert.deepEqual(orderOnDisk(dir, origin, first), first, 'stored in the order asked');

    // Used before a clean stop: written with the stop.
    for (const p of range(0, 10)) assert.ok(await isHit(proxy, origin, p));
    await proxy.stop();
    proxy = await spawnProxy(args);

    // Used after that restart, then SIGKILL once the uses are in the journal (the touch flush).
    for (const p of range(10, 20)) assert.ok(await isHit(proxy, origin, p));
    const expected = [...range(20, 200), ...range(0, 10), ...range(10, 20)];
    await waitFor(() => orderOnDisk(dir, origin, first).slice(-10).join() === range(10, 20).join(), 'the uses to be flushed to the journal', 30_000);
    proxy.proc.kill('SIGKILL');
    await proxy.exited;

    proxy = await spawnProxy(args);
    // Past the limit: 100 more entries evict about 70 of the least recently used.
    const added = range(200, 300);
    await fill(proxy, origin, added);
    await untilStored(dir, origin, added);
    const asked = totalAsked(origin);

    const kept = new Set<string>();
    for (const p of [...first, ...added]) if (await isHit(proxy, origin, p)) kept.add(p);
    assert.equal(totalAsked(origin), asked, 'the checks asked the origin nothing');
    for (const p of range(0, 20)) assert.ok(kept.has(p), `${p}, used before the restart and the kill, is kept`);
    for (const p of added) assert.ok(kept.has(p), `${p}, the newest, is kept`);
    const gone = expected.filter((p) => !kept.has(p));
    assert.ok(gone.length >= 50, `${gone.length} entries evicted`);
    assert.deepEqual(gone, expected.slice(0, gone.length), 'the least recently used went first, in order');
    console.log(`LRU: ${gone.length} evicted (${gone[0]} .. ${gone[gone.length - 1]}), the 20 used before the restart and the kill kept`);
  } finally {
    await proxy.stop();
    await origin.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('the size limit after SIGKILLs and restarts, and a smaller one set at a restart: the entries end within the limit and not 1% below it, every kept one intact', async () => {
  const origin = await startOrigin();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'faults-limit-'));
  const argsFor = (mb: number) => ['--cache-dir', dir, '--max-size-mb', String(mb), '--log-level', 'warn'];
  let proxy = await spawnProxy(argsFor(1));
  try {
    const limit = 1024 * 1024;
    const within = (bytes: number, max: number, when: string) =>
      assert.ok(bytes <= max && bytes >= max * 0.99, `${when}: ${bytes} bytes for a limit of ${max} (${((bytes / max) * 100).toFixed(2)}%)`);
    // Past the limit, then killed once the last write is in the journal.
    const first = range(0, 400);
    await fill(proxy, origin, first);
    await untilStored(dir, origin, first.slice(-1));
    within(accountedBytes(dir), limit, 'after 400 writes, before the kill');
    proxy.proc.kill('SIGKILL');
    await proxy.exited;

    // Restarted after the kill: more writes, then killed while writes are still under way.
    proxy = await spawnProxy(argsFor(1));
    const second = range(400, 600);
    await fill(proxy, origin, second.slice(0, 150));
    const unfinished = second.slice(150).map((p) => get(proxy.port, origin.url + p).catch(() => null));
    proxy.proc.kill('SIGKILL');
    await proxy.exited;
    await Promise.all(unfinished);

    // A clean start after the kill: the limit holds, and nothing kept is lost or damaged.
    proxy = await spawnProxy(argsFor(1));
    await fill(proxy, origin, range(600, 650));
    await untilStored(dir, origin, range(600, 650));
    within(accountedBytes(dir), limit, 'after the kills, a restart and 50 more writes');
    let kept = 0;
    for (const p of range(0, 650)) if (await isHit(proxy, origin, p)) kept++;
    assert.ok(kept > 150, `${kept} entries kept`);
    await proxy.stop();
    within(accountedBytes(dir), limit, 'after a clean stop');

    // A smaller limit at the next start: evicted down to it.
    proxy = await spawnProxy(argsFor(0.5));
    assert.ok(await isHit(proxy, origin, item(649)), 'the newest entry is kept');
    await proxy.stop();
    within(accountedBytes(dir), limit / 2, 'restarted with half the limit');
    console.log(`size limit: ${kept} entries kept of 650 written; ${accountedBytes(dir)} bytes accounted, ${fileBytes(dir)} bytes of pack and body files`);
  } finally {
    await proxy.stop();
    await origin.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('SIGKILL while an old-layout cache is migrated: after the restart every old entry is a hit, intact, in its old LRU order, and the oldest go first once the cache fills', async () => {
  const origin = await startOrigin();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'faults-migrate-lru-'));
  const args = ['--cache-dir', dir, '--max-size-mb', '2', '--log-level', 'warn'];
  const old = range(0, 1000).map((p) => p.replace('/item/', '/old/'));
  const oldBody = (p: string) => bodyOf(origin.url + p, 1024);
  // index.json lists them least recently used first: /old/0 is the oldest.
  writeLegacyIndex(dir, old.map((p) => writeLegacyEntry(dir, origin.url + p, oldBody(p))));
  const oldFiles = () => (fs.existsSync(path.join(dir, 'entries')) ? filesUnder(path.join(dir, 'entries')).length : 0);
  let proxy = await spawnProxy(args);
  try {
    await waitFor(() => oldFiles() < old.length * 2 * 0.9, 'the migration to be under way', 20_000);
    proxy.proc.kill('SIGKILL');
    await proxy.exited;
    const leftAfterKill = oldFiles();
    assert.ok(leftAfterKill > 0, 'killed before the migration finished');

    proxy = await spawnProxy(args);
    await waitFor(() => !fs.existsSync(path.join(dir, 'entries')), 'the migration to finish', 30_000);
    assert.deepEqual(orderOnDisk(dir, origin, old), old, 'the old LRU order, across the kill');
    // Oldest first, so the checks leave the order as it was.
    for (const p of old) assert.ok(await isHit(proxy, origin, p, oldBody(p)), `${p}: migrated, not lost`);
    assert.equal(totalAsked(origin), 0, 'nothing fetched again');

    const added = range(0, 300);
    await fill(proxy, origin, added);
    await untilStored(dir, origin, added);
    const kept = new Set<string>();
    for (const p of old) if (await isHit(proxy, origin, p, oldBody(p))) kept.add(p);
    for (const p of added) assert.ok(await isHit(proxy, origin, p), `${p}, the newest, is kept`);
    const gone = old.filter((p) => !kept.has(p));
    assert.ok(gone.length > 0, 'the cache filled past its limit');
    assert.deepEqual(gone, old.slice(0, gone.length), 'the oldest of the old entries went first, in order');
    console.log(`migration killed with ${leftAfterKill} of ${old.length * 2} old files left; after the restart all ${old.length} in their old order; ${gone.length} of them evicted first`);
  } finally {
    await proxy.stop();
    await origin.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
