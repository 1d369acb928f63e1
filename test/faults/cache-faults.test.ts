import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { execFileSync, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { locateEntry, writeLegacyEntry, writeLegacyIndex } from '../helpers/storeEntries';
import { EntryStore } from '../../src/cache/store/entryStore';
import { hashKey } from '../../src/cache/store/keyIndex';
import { sleep, waitFor } from '../helpers/net';
import { spawnProxy, type ChildProxy } from './lib/child';
import { filesUnder } from '../helpers/files';

/**
 * The cache under faults, through the real CLI on a real cache directory: SIGKILL mid-write,
 * damaged files, a full or read-only disk, and responses that must not be shared.
 */

/** The body the origin serves for a path: deterministic, so any corruption shows. */
function bodyFor(p: string, size: number): Buffer {
  const seed = createHash('sha256').update(p).digest('hex');
  return Buffer.from(seed.repeat(Math.ceil(size / seed.length)).slice(0, size));
}

interface CountingOrigin {
  url: string;
  port: number;
  hits: Map<string, number>;
  /** Large bodies the origin has started sending. */
  largeStarted: number;
  close(): Promise<void>;
}

/** /s/* = 1 KB, /l/* = 3 MB sent in 64 KB steps; all cacheable for 10 minutes. */
async function startCountingOrigin(): Promise<CountingOrigin> {
  const o = { hits: new Map<string, number>(), largeStarted: 0 } as CountingOrigin;
  const server = http.createServer((req, res) => {
    const p = (req.url ?? '/').split('?')[0];
    o.hits.set(p, (o.hits.get(p) ?? 0) + 1);
    const size = p.startsWith('/l/') ? 3 * 1024 * 1024 : p.startsWith('/m/') ? 200 * 1024 : 1024;
    const body = bodyFor(p, size);
    res.writeHead(200, { 'Content-Type': 'application/octet-stream', 'Content-Length': body.length, 'Cache-Control': 'max-age=600' });
    if (size <= 200 * 1024) return void res.end(body);
    o.largeStarted++;
    let at = 0;
    const step = () => {
      if (res.destroyed) return;
      const chunk = body.subarray(at, at + 64 * 1024);
      at += chunk.length;
      if (at >= body.length) return void res.end(chunk);
      res.write(chunk);
      setTimeout(step, 2);
    };
    step();
  });
  server.keepAliveTimeout = 1000;
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  o.port = (server.address() as AddressInfo).port;
  o.url = `http://127.0.0.1:${o.port}`;
  o.close = () =>
    new Promise<void>((r) => {
      server.closeAllConnections();
      server.close(() => r());
    });
  return o;
}

interface Fetched {
  status: number;
  body: Buffer;
  cacheStatus: string;
  complete: boolean;
}

function fetchVia(proxyPort: number, url: string, headers: http.OutgoingHttpHeaders = {}): Promise<Fetched> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port: proxyPort, path: url, headers: { host: new URL(url).host, ...headers }, agent: false });
    req.on('response', (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      const done = () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks), cacheStatus: String(res.headers['cache-status'] ?? ''), complete: res.complete });
      res.on('end', done);
      res.on('error', done);
    });
    req.on('error', reject);
    req.end();
  });
}

function tempDir(name: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), `faults-${name}-`));
}


function bodyFilesUnder(dir: string): string[] {
  return filesUnder(path.join(dir, 'store', 'bodies'));
}

function warnings(proxy: ChildProxy, pattern: RegExp): number {
  return proxy.stderr().split('\n').filter((l) => pattern.test(l)).length;
}

test('SIGKILL while large and small entries are being written, then a restart on the same dir: nothing served truncated or wrong, temp files cleaned', async () => {
  const origin = await startCountingOrigin();
  const dir = tempDir('kill');
  let proxy = await spawnProxy(['--cache-dir', dir, '--log-level', 'warn']);
  const paths = [...Array.from({ length: 60 }, (_, i) => `/s/${i}`), ...Array.from({ length: 12 }, (_, i) => `/l/${i}`)];
  try {
    // Small ones complete; large ones are mid-body when the process dies.
    for (const p of paths.slice(0, 30)) await fetchVia(proxy.port, origin.url + p);
    const inFlight = paths.slice(30).map((p) => fetchVia(proxy.port, origin.url + p).catch(() => null));
    await waitFor(() => origin.largeStarted >= 12, 'large downloads to be under way');
    await sleep(30);
    proxy.proc.kill('SIGKILL');
    await proxy.exited;
    await Promise.all(inFlight);
    const leftovers = fs.existsSync(path.join(dir, 'tmp')) ? fs.readdirSync(path.join(dir, 'tmp')) : [];

    proxy = await spawnProxy(['--cache-dir', dir, '--log-level', 'warn']);
    assert.deepEqual(fs.readdirSync(path.join(dir, 'tmp')), [], `temp files of interrupted writes are removed at start (there were ${leftovers.length})`);
    let hits = 0;
    for (const p of paths) {
      const r = await fetchVia(proxy.port, origin.url + p);
      assert.equal(r.status, 200, p);
      assert.ok(r.body.equals(bodyFor(p, r.body.length)) && r.body.length === (p.startsWith('/l/') ? 3 * 1024 * 1024 : 1024), `${p}: body intact (${r.body.length} bytes, ${r.cacheStatus})`);
      if (/\bhit\b/.test(r.cacheStatus)) hits++;
    }
    assert.ok(hits >= 30, `entries completed before the kill are served from the cache after it (${hits} hits)`);
    console.log(`SIGKILL: ${leftovers.length} temp files left by the kill and removed at restart; ${hits} of ${paths.length} URLs were hits afterwards`);
    // Every entry in the store, read through it after a clean stop, matches its checks and its origin body.
    await proxy.stop();
    const store = await EntryStore.open(dir, { maxBytes: 1e12 });
    try {
      let stored = 0;
      for (const p of paths) {
        const found = await store.get(hashKey(`GET ${origin.url}${p}`));
        if (!found) continue;
        stored++;
        const body = found.body ?? (await store.readBody(found.meta.hash, found.meta.digest, found.meta.size));
        assert.ok(body.equals(bodyFor(p, p.startsWith('/l/') ? 3 * 1024 * 1024 : 1024)), `${p}: stored body intact`);
      }
      assert.equal(stored, store.count, 'nothing else in the store');
    } finally {
      await store.close();
    }
  } finally {
    await proxy.stop();
    await origin.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('SIGKILL while the proxy migrates a cache of the previous layout, then a restart: every old entry is a hit, byte for byte', async () => {
  const origin = await startCountingOrigin();
  const dir = tempDir('migrate-kill');
  const paths = [...Array.from({ length: 1500 }, (_, i) => `/s/old-${i}`), ...Array.from({ length: 6 }, (_, i) => `/m/old-${i}`)];
  const metas = paths.map((p) => writeLegacyEntry(dir, origin.url + p, bodyFor(p, p.startsWith('/m/') ? 200 * 1024 : 1024)));
  writeLegacyIndex(dir, metas);
  let proxy = await spawnProxy(['--cache-dir', dir, '--log-level', 'info']);
  try {
    // Killed in the middle of the migration, which runs in the background while it serves.
    const oldFiles = () => (fs.existsSync(path.join(dir, 'entries')) ? filesUnder(path.join(dir, 'entries')).length : 0);
    await waitFor(() => oldFiles() < paths.length * 2 * 0.9, 'the migration to be under way', 20_000);
    proxy.proc.kill('SIGKILL');
    await proxy.exited;
    const leftAfterKill = oldFiles();
    assert.ok(leftAfterKill > 0, 'killed before the migration finished');
    proxy = await spawnProxy(['--cache-dir', dir, '--log-level', 'info']);
    for (const p of paths) {
      const r = await fetchVia(proxy.port, origin.url + p);
      assert.ok(r.body.equals(bodyFor(p, p.startsWith('/m/') ? 200 * 1024 : 1024)), `${p}: intact (${r.cacheStatus})`);
      assert.match(r.cacheStatus, /\bhit\b/, `${p}: migrated, not lost`);
    }
    assert.equal(origin.hits.size, 0, 'nothing fetched again');
    await waitFor(() => !fs.existsSync(path.join(dir, 'entries')), 'the migration to finish', 20_000);
    assert.ok(!fs.existsSync(path.join(dir, 'index.json')));
    console.log(`migration killed with ${leftAfterKill} of ${paths.length * 2} old files left; all ${paths.length} entries hits after the restart`);
  } finally {
    await proxy.stop();
    await origin.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('a second proxy on the same cache directory does not write into it: one warning, it proxies from memory; a killed holder\'s lock is taken over', async () => {
  const origin = await startCountingOrigin();
  const dir = tempDir('shared');
  const first = await spawnProxy(['--cache-dir', dir, '--log-level', 'warn']);
  let second: ChildProxy | null = null;
  let third: ChildProxy | null = null;
  try {
    await fetchVia(first.port, origin.url + '/s/first');
    second = await spawnProxy(['--cache-dir', dir, '--log-level', 'warn']);
    for (let i = 0; i < 3; i++) assert.ok((await fetchVia(second.port, origin.url + '/s/second')).body.equals(bodyFor('/s/second', 1024)));
    assert.equal(origin.hits.get('/s/second'), 1, 'the second caches in memory');
    assert.equal(warnings(second, new RegExp(`cannot write to .*in use by process ${first.pid}`)), 1, second.stderr());
    first.proc.kill('SIGKILL');
    await first.exited;
    third = await spawnProxy(['--cache-dir', dir, '--log-level', 'info']);
    assert.match((await fetchVia(third.port, origin.url + '/s/first')).cacheStatus, /\bhit\b/, 'the killed holder\'s entries are served: its lock was taken over');
    const told = new RegExp(`did not stop cleanly \\(process ${first.pid} left its lock behind\\)`);
    // Said once the index is in, a log batch later: wait for the line (the test's timeout bounds it).
    while (!told.test(third.stdout())) await new Promise((resolve) => setTimeout(resolve, 20));
    assert.equal(warnings(third, /cannot write to/), 0, third.stderr());
  } finally {
    await first.stop();
    await second?.stop();
    await third?.stop();
    await origin.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

type Damage = (file: string) => void;
const DAMAGE: Record<string, Damage> = {
  truncated: (f) => fs.truncateSync(f, Math.floor(fs.statSync(f).size / 2)),
  'bit-flipped': (f) => {
    const b = fs.readFileSync(f);
    b[Math.floor(b.length / 3)] ^= 0x10;
    fs.writeFileSync(f, b);
  },
  deleted: (f) => fs.unlinkSync(f),
  garbage: (f) => fs.writeFileSync(f, Buffer.from('\x00garbage\xff'.repeat(50), 'latin1')),
  'same-size garbage': (f) => fs.writeFileSync(f, Buffer.alloc(fs.statSync(f).size, 0x41)),
};

/** The same damages to one record inside a pack file that other entries share: done in place, to its bytes only. */
const RECORD_DAMAGE: Record<string, (pack: string, offset: number, length: number) => void> = {
  truncated: (pack, offset, length) => overwrite(pack, offset + Math.floor(length / 2), Buffer.alloc(length - Math.floor(length / 2))),
  'bit-flipped': (pack, offset, length) => {
    const fd = fs.openSync(pack, 'r+');
    const b = Buffer.alloc(1);
    fs.readSync(fd, b, 0, 1, offset + Math.floor(length / 3));
    b[0] ^= 0x10;
    fs.writeSync(fd, b, 0, 1, offset + Math.floor(length / 3));
    fs.closeSync(fd);
  },
  deleted: (pack, offset, length) => overwrite(pack, offset, Buffer.alloc(length)),
  garbage: (pack, offset, length) => overwrite(pack, offset, Buffer.from('\x00garbage\xff'.repeat(50), 'latin1').subarray(0, length)),
  'same-size garbage': (pack, offset, length) => overwrite(pack, offset, Buffer.alloc(length, 0x41)),
};

function overwrite(file: string, at: number, bytes: Buffer): void {
  const fd = fs.openSync(file, 'r+');
  fs.writeSync(fd, bytes, 0, bytes.length, at);
  fs.closeSync(fd);
}

/** Damages the body file or the record (metadata) of the entry stored for `url`. */
function damageEntry(dir: string, url: string, which: 'body' | 'meta', name: string): void {
  const at = locateEntry(dir, `GET ${url}`);
  if (!at || !at.body) throw new Error(`no entry with a body file on disk for ${url}`);
  if (which === 'body') DAMAGE[name](at.body);
  else RECORD_DAMAGE[name](at.pack, at.offset, at.length);
}

async function damageRound(origin: CountingOrigin, dir: string, proxy: ChildProxy, prefix: string, restart: () => Promise<ChildProxy>): Promise<ChildProxy> {
  const cases: Array<[string, 'body' | 'meta', string]> = [];
  for (const name of Object.keys(DAMAGE)) {
    cases.push([`/m/${prefix}-body-${name.replace(/ /g, '-')}`, 'body', name]);
    cases.push([`/m/${prefix}-meta-${name.replace(/ /g, '-')}`, 'meta', name]);
  }
  const intact = `/m/${prefix}-intact`;
  for (const [p] of cases) await fetchVia(proxy.port, origin.url + p);
  await fetchVia(proxy.port, origin.url + intact);
  await waitFor(() => cases.every(([p]) => locateEntry(dir, `GET ${origin.url}${p}`)?.body), 'entries to be on disk');
  for (const [p, which, name] of cases) damageEntry(dir, origin.url + p, which, name);
  const current = await restart();
  for (const [p, which] of cases) {
    const before = origin.hits.get(p) ?? 0;
    const r = await fetchVia(current.port, origin.url + p);
    assert.equal(r.status, 200, p);
    assert.ok(r.complete && r.body.equals(bodyFor(p, 200 * 1024)), `${p} (${which} damaged): the exact body, never the damaged one (${r.body.length} bytes, ${r.cacheStatus})`);
    // Without a memory tier every hit reads the record and the body file: each damage is found and refetched.
    assert.equal(origin.hits.get(p), before + 1, `${p}: dropped and fetched again from the origin`);
    const again = await fetchVia(current.port, origin.url + p);
    assert.ok(again.body.equals(bodyFor(p, 200 * 1024)), `${p}: stored again correctly`);
  }
  const r = await fetchVia(current.port, origin.url + intact);
  assert.match(r.cacheStatus, /\bhit\b/, 'an undamaged entry is still a hit');
  return current;
}

test('cache files truncated, bit-flipped, deleted or replaced by garbage, between runs and while running: detected, dropped, refetched, never served', async () => {
  const origin = await startCountingOrigin();
  const dir = tempDir('damage');
  // No memory tier: while running, every hit reads (and checks) the files.
  const args = ['--cache-dir', dir, '--max-memory-mb', '0', '--log-level', 'warn'];
  const started: ChildProxy[] = [await spawnProxy(args)];
  let proxy = started[0];
  try {
    proxy = await damageRound(origin, dir, proxy, 'between', async () => {
      await proxy.stop();
      started.push(await spawnProxy(args));
      return started[started.length - 1];
    });
    proxy = await damageRound(origin, dir, proxy, 'running', async () => proxy);
    assert.ok(proxy.alive());
    assert.ok(warnings(proxy, /corrupt/) >= 1, `damaged entries are reported:\n${proxy.stderr()}`);
  } finally {
    for (const p of started) await p.stop();
    await origin.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

function mountTmpfs(dir: string, sizeKB: number): boolean {
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${sizeKB}k,mode=0700`, 'tmpfs', dir], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

function unmount(dir: string): void {
  try {
    execFileSync('umount', ['-l', dir], { stdio: 'ignore' });
  } catch {
    // not mounted
  }
}

test('a full disk (2 MB tmpfs): every response complete and correct, ONE warning, not one per request', async (t) => {
  const dir = tempDir('full');
  if (!mountTmpfs(dir, 2048)) {
    t.skip('mounting a tmpfs needs root (mount -t tmpfs); not checked here');
    fs.rmSync(dir, { recursive: true, force: true });
    return;
  }
  const origin = await startCountingOrigin();
  let proxy: ChildProxy | null = null;
  try {
    proxy = await spawnProxy(['--cache-dir', dir, '--log-level', 'warn']);
    // The size limit keeps the cache within half the free space it saw at start: something else fills the rest.
    fs.writeFileSync(path.join(dir, 'filler'), Buffer.alloc(1200 * 1024));
    // 40 × 200 KB = 8 MB through what is left of a 2 MB disk.
    for (let i = 0; i < 40; i++) {
      const p = `/m/full-${i}`;
      const r = await fetchVia(proxy.port, origin.url + p);
      assert.ok(r.status === 200 && r.complete && r.body.equals(bodyFor(p, 200 * 1024)), `${p} complete (${r.body.length} bytes)`);
    }
    await sleep(200);
    assert.equal(warnings(proxy, /cannot write to/), 1, `one disk warning:\n${proxy.stderr()}`);
    assert.match(proxy.stderr(), /disk is full/);
    assert.deepEqual(fs.readdirSync(path.join(dir, 'tmp')), [], 'no temp files left on the full disk');
    assert.ok(proxy.alive());
  } finally {
    await proxy?.stop();
    await origin.close();
    unmount(dir);
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('a read-only cache dir: stored entries still served, new responses proxied, ONE warning', async (t) => {
  const dir = tempDir('ro');
  if (!mountTmpfs(dir, 8192)) {
    t.skip('mounting a tmpfs needs root (mount -t tmpfs); not checked here');
    fs.rmSync(dir, { recursive: true, force: true });
    return;
  }
  const origin = await startCountingOrigin();
  let proxy: ChildProxy | null = null;
  try {
    proxy = await spawnProxy(['--cache-dir', dir, '--log-level', 'warn']);
    await fetchVia(proxy.port, origin.url + '/s/before');
    await proxy.stop();
    execFileSync('mount', ['-o', 'remount,ro', dir]);
    proxy = await spawnProxy(['--cache-dir', dir, '--log-level', 'warn']);
    for (let i = 0; i < 20; i++) {
      const p = `/s/ro-${i % 5}`;
      const r = await fetchVia(proxy.port, origin.url + p);
      assert.ok(r.status === 200 && r.body.equals(bodyFor(p, 1024)), p);
    }
    assert.equal(warnings(proxy, /cannot write to/), 1, `one warning:\n${proxy.stderr()}`);
    assert.match(proxy.stderr(), /not writable/);
    assert.ok(proxy.alive());
  } finally {
    await proxy?.stop();
    await origin.close();
    unmount(dir);
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('the cache directory and its files are created owner-only, even under umask 000', async () => {
  const base = tempDir('perm');
  const dir = path.join(base, 'nested', 'cache');
  const origin = await startCountingOrigin();
  // The real CLI, started by a shell with a permissive umask.
  const child = spawn('sh', ['-c', `umask 000 && exec "${process.execPath}" "${path.resolve(__dirname, '../../../dist/cli.js')}" --port 0 --cache-dir "${dir}"`], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (c: Buffer) => (out += c.toString()));
  try {
    await waitFor(() => /listening on http:\/\/[^\s]+:(\d+)/.test(out), 'the proxy to start', 10_000);
    const port = Number(/listening on http:\/\/[^\s]+:(\d+)/.exec(out)![1]);
    await fetchVia(port, origin.url + '/s/perm');
    await fetchVia(port, origin.url + '/m/perm');
    await waitFor(() => bodyFilesUnder(dir).length >= 1 && filesUnder(path.join(dir, 'store', 'packs')).some((f) => fs.statSync(f).size > 0), 'the entry files');
    const mode = (p: string) => fs.statSync(p).mode & 0o777;
    assert.equal(mode(dir).toString(8), '700');
    const bodyDirs = fs.readdirSync(path.join(dir, 'store', 'bodies')).map((d) => path.join(dir, 'store', 'bodies', d));
    for (const sub of [path.join(dir, 'store'), path.join(dir, 'store', 'packs'), path.join(dir, 'store', 'bodies'), ...bodyDirs, path.join(dir, 'tmp')]) assert.equal(mode(sub).toString(8), '700', sub);
    for (const f of filesUnder(dir)) assert.equal(mode(f) & 0o077, 0, `${f} is ${mode(f).toString(8)}`);
  } finally {
    child.kill('SIGTERM');
    await new Promise((r) => child.once('exit', r));
    await origin.close();
    fs.rmSync(base, { recursive: true, force: true });
  }
});

test('cache poisoning: responses that must not be shared are never served to another client under the default policy', async () => {
  const dir = tempDir('poison');
  let sequence = 0;
  const server = http.createServer((req, res) => {
    const n = ++sequence;
    const p = req.url ?? '/';
    const common = { 'Content-Type': 'text/plain' };
    if (p === '/cookie') {
      res.writeHead(200, { ...common, 'Cache-Control': 'max-age=600', 'Set-Cookie': `session=user-${n}` });
      return void res.end(`private page #${n}`);
    }
    if (p === '/auth') {
      res.writeHead(200, { ...common, 'Cache-Control': 'max-age=600' });
      return void res.end(`account of ${req.headers.authorization ?? 'nobody'} #${n}`);
    }
    if (p === '/private') {
      res.writeHead(200, { ...common, 'Cache-Control': 'private, max-age=600' });
      return void res.end(`private #${n}`);
    }
    if (p === '/vary') {
      res.writeHead(200, { ...common, 'Cache-Control': 'max-age=600', Vary: 'Accept-Language' });
      return void res.end(req.headers['accept-language'] === 'fr' ? `bonjour #${n}` : `hello #${n}`);
    }
    if (p === '/vary-star') {
      res.writeHead(200, { ...common, 'Cache-Control': 'max-age=600', Vary: '*' });
      return void res.end(`star #${n}`);
    }
    res.writeHead(200, { ...common, 'Cache-Control': 'max-age=600' });
    res.end(`public ${p} #${n}`);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const o = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const proxy = await spawnProxy(['--cache-dir', dir, '--log-level', 'warn']);
  try {
    const get = async (p: string, headers: http.OutgoingHttpHeaders = {}) => (await fetchVia(proxy.port, o + p, headers)).body.toString();

    const alice = await get('/cookie');
    const bob = await get('/cookie');
    assert.notEqual(bob, alice, 'a Set-Cookie response (no public) is not served to the next client');

    const withAuth = await get('/auth', { authorization: 'Bearer alice' });
    assert.match(withAuth, /Bearer alice/);
    const anonymous = await get('/auth');
    assert.doesNotMatch(anonymous, /alice/, 'a response to an Authorization request is not served to another client');
    const otherUser = await get('/auth', { authorization: 'Bearer bob' });
    assert.doesNotMatch(otherUser, /alice/);

    assert.notEqual(await get('/private'), await get('/private'), 'private responses are not shared');

    const en = await get('/vary', { 'accept-language': 'en' });
    const fr = await get('/vary', { 'accept-language': 'fr' });
    assert.match(en, /^hello/);
    assert.match(fr, /^bonjour/, 'a Vary mismatch is not answered with the other variant');
    assert.equal(await get('/vary', { 'accept-language': 'en' }), en, 'the matching variant is a hit');
    assert.notEqual(await get('/vary-star'), await get('/vary-star'), 'Vary: * never matches');

    // A smuggling attempt aimed at the cache: the bytes after an ambiguous request must not become
    // the stored answer for /victim.
    const s = await import('node:net').then((net) => net.connect(proxy.port, '127.0.0.1'));
    await new Promise((r) => s.once('connect', r));
    let answer = '';
    s.on('data', (c: Buffer) => (answer += c.toString('latin1')));
    s.write(`POST ${o}/x HTTP/1.0\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n0\r\n\r\nGET ${o}/victim HTTP/1.1\r\nHost: x\r\n\r\n`);
    await new Promise((r) => s.once('close', r).once('error', r));
    assert.match(answer, /^HTTP\/1\.1 400 /, 'the ambiguous request is refused');
    assert.equal(answer.match(/HTTP\/1\.1 /g)?.length, 1, 'and nothing after it is answered');
    const victim = await get('/victim');
    assert.match(victim, /^public \/victim #/, 'the victim gets the origin\'s own response');
    assert.equal(await get('/victim'), victim, 'and that is what is cached');

    // Sanity: the cache does share what may be shared, so the checks above can fail.
    assert.equal(await get('/public'), await get('/public'));
  } finally {
    await proxy.stop();
    server.closeAllConnections();
    server.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
