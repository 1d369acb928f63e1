// The disk store with N stored entries of 1 KiB (default 100,000): start-up after a clean stop
// and after SIGKILL, resident memory idle, disk usage against the bodies' bytes. Each start is a
// fresh process (node -e), so its RSS is that of a process holding only the store's index.
// Then the proxy (dist/cli.js) on that store: listening after a clean stop and after SIGKILL, RSS
// idle and after a request for every entry, fresh hits/s with wrk over 100 entries and over all
// (BENCH_CLI=0 skips it; BENCH_CLI_ARGS adds flags). Run after `npm run build && npm run compile-tests`:
//   node scripts/bench-cache-startup.cjs [entries] [dir] [writes before each SIGKILL, default 2000]
// (records in the compact form the cache writes; BENCH_META_FORM=json: the JSON form of earlier versions)
// With a dir, the store is kept (and reused when it already holds the entries), e.g. for
//   node dist/cli.js --cache-dir DIR --quiet --port P    (the proxy on that store)
// Figures: docs/BENCHMARKS.md, "A million entries".
const { execFileSync, spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const CachePolicy = require('http-cache-semantics');

const root = path.resolve(__dirname, '..');
const STORE = path.join(root, 'out/src/cache/store/entryStore.js');
const { EntryStore, hashKey } = require(STORE);
const { storedMeta } = require(path.join(root, 'out/src/cache/storedEntry.js'));
const { loadMeta } = require(path.join(root, 'out/src/cache/entry.js'));
/** BENCH_META_FORM=json: records in the JSON form that versions before the compact form wrote (the cache reads both). */
const jsonForm = process.env.BENCH_META_FORM === 'json';

const n = Number(process.argv[2] ?? 100_000);
const keep = process.argv[3];
/** Entries written after each start that is then killed: what the next start replays (a checkpoint comes at max(200,000, entries/4)). */
const killWrites = Number(process.argv[4] ?? 2000);
const dir = keep ? path.resolve(keep) : fs.mkdtempSync(path.join(os.tmpdir(), 'cp-bench-store-'));
const body = Buffer.alloc(1024, 'x');
const MiB = 1024 * 1024;

/** Metadata as the cache writes it for a 1 KiB response (the bench origin's headers). */
function metaFor(i) {
  const url = `http://127.0.0.1:9/1k.bin?entry=${i}`;
  const key = 'GET ' + url;
  const headers = { 'content-type': 'application/octet-stream', 'content-length': '1024', 'cache-control': 'max-age=86400', date: new Date().toUTCString() };
  const policy = new CachePolicy({ url, method: 'GET', headers: { host: '127.0.0.1:9' } }, { status: 200, headers });
  const now = Date.now();
  const record = {
    key, hash: hashKey(key), url, status: 200, size: 1024, digest: '', storedAt: now, freshUntil: now + 86_400_000, hits: 0,
    contentType: 'application/octet-stream', vary: null,
  };
  const raw = ['Content-Type', 'application/octet-stream', 'Content-Length', '1024', 'Cache-Control', 'max-age=86400', 'Date', headers.date, 'Via', '1.1 caching-proxy'];
  if (!jsonForm) return storedMeta(record, loadMeta(policy, 'OK', raw, { host: '127.0.0.1:9' }));
  return { ...record, v: 1, statusMessage: 'OK', raw, policy: policy.toObject() };
}

async function populate() {
  const store = await EntryStore.open(dir, { maxBytes: 1e13 });
  if (store.count >= n) {
    console.log(`the store in ${dir} already holds ${store.count} entries`);
    await store.close();
    return;
  }
  const t0 = performance.now();
  let next = store.count;
  const worker = async () => {
    while (next < n) {
      const i = next++;
      const writer = store.newWriter();
      writer.write(body);
      await store.commit(writer, metaFor(i));
    }
  };
  await Promise.all(Array.from({ length: 16 }, worker));
  await store.close();
  console.log(`wrote ${n} entries in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
}

/** Opens the store in a fresh process; returns its start-up time and RSS, optionally writing `extra` entries and dying by SIGKILL. */
function openInChild(mode) {
  const script = `
    const { EntryStore } = require(${JSON.stringify(STORE)});
    const t = performance.now();
    EntryStore.open(${JSON.stringify(dir)}, { maxBytes: 1e13 }).then(async (store) => {
      const ms = performance.now() - t;
      global.gc && global.gc();
      const rss = process.memoryUsage().rss;
      process.stdout.write(JSON.stringify({ ms, rss, entries: store.count, replayed: store.report.journalRecords, fromSnapshot: store.report.fromSnapshot }) + '\\n');
      if (${JSON.stringify(mode)} === 'kill') {
        // Some writes since the start, then SIGKILL: the next start replays the journal.
        const body = Buffer.alloc(1024, 'y');
        for (let i = 0; i < ${killWrites}; i++) {
          const w = store.newWriter();
          w.write(body);
          const key = 'GET http://127.0.0.1:9/after-start/' + i;
          await store.commit(w, { v: 1, key, hash: require('node:crypto').createHash('sha256').update(key).digest('hex'), url: key.slice(4), status: 200, size: 1024, digest: '', storedAt: Date.now(), freshUntil: Date.now() + 1e6, hits: 0, vary: null, statusMessage: 'OK', raw: [], policy: {} });
        }
        process.kill(process.pid, 'SIGKILL');
      } else await store.close();
    });`;
  const r = spawnSync(process.execPath, ['--expose-gc', '-e', script], { encoding: 'utf8' });
  return JSON.parse(r.stdout.split('\n')[0]);
}

function diskBytes(d) {
  let total = 0;
  for (const e of fs.readdirSync(d, { withFileTypes: true })) {
    const p = path.join(d, e.name);
    total += e.isDirectory() ? diskBytes(p) : fs.statSync(p).blocks * 512;
  }
  return total;
}

/** The CLI on the store: spawned, timed to its "listening" line. */
function startCli() {
  const { spawn } = require('node:child_process');
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const proc = spawn(process.execPath, [path.join(root, 'dist/cli.js'), '--cache-dir', dir, '--port', '0', '--quiet', ...(process.env.BENCH_CLI_ARGS ?? '').split(' ').filter(Boolean)], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    proc.stdout.on('data', (c) => {
      out += c;
      const m = /listening on http:\/\/[^:]+:(\d+)/.exec(out);
      if (m && !proc.listenMs) {
        proc.listenMs = performance.now() - t0;
        resolve({ proc, port: Number(m[1]), listenMs: proc.listenMs });
      }
    });
    proc.once('exit', (code) => reject(new Error(`the proxy exited (${code}) before listening`)));
  });
}

function stopCli(cli, signal) {
  return new Promise((resolve) => {
    cli.proc.removeAllListeners('exit');
    cli.proc.once('exit', resolve);
    cli.proc.kill(signal);
  });
}

function rssMiB(pid) {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (name) => Number(new RegExp(`${name}:\\s+(\\d+)`).exec(status)[1]);
  return { rss: kb('VmRSS') / 1024, peak: kb('VmHWM') / 1024 };
}

/** GETs through the proxy, `concurrency` at a time on keep-alive connections; resolves with how many were hits. */
async function through(port, urls, concurrency = 32) {
  const http = require('node:http');
  const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency });
  let next = 0;
  let hits = 0;
  const one = (url) =>
    new Promise((resolve, reject) => {
      const req = http.get({ host: '127.0.0.1', port, path: url, agent, headers: { host: new URL(url).host } }, (res) => {
        if (/\bhit\b/.test(String(res.headers['cache-status']))) hits++;
        res.resume();
        res.on('end', resolve);
      });
      req.on('error', reject);
    });
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (next < urls.length) await one(urls[next++]);
  }));
  agent.destroy();
  return hits;
}

/** Fresh hits per second with wrk, requests spread at random over the first `spread` entries. */
function wrkRate(port, spread) {
  const script = path.join(os.tmpdir(), `cp-bench-spread-${spread}.lua`);
  fs.writeFileSync(script, `math.randomseed(${spread})\nrequest = function()\n  return wrk.format("GET", "http://127.0.0.1:9/1k.bin?entry=" .. math.random(0, ${spread - 1}), { Host = "127.0.0.1:9" })\nend\n`);
  const out = execFileSync('wrk', ['-t1', '-c32', '-d5s', '-s', script, `http://127.0.0.1:${port}`], { encoding: 'utf8' });
  fs.rmSync(script, { force: true });
  return Number(/Requests\/sec:\s+([\d.]+)/.exec(out)[1]);
}

/** A stored entry asked for the moment the proxy listens (its index may still be loading): ms to its answer, and whether it was a hit. */
async function firstHit(port) {
  const http = require('node:http');
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    http.get({ host: '127.0.0.1', port, path: 'http://127.0.0.1:9/1k.bin?entry=0', headers: { host: '127.0.0.1:9' }, agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve({ ms: performance.now() - t0, hit: /\bhit\b/.test(String(res.headers['cache-status'])) }));
    }).on('error', reject);
  });
}

/** The proxy itself on the store: listening after a clean stop and after SIGKILL, RSS idle and after every entry was hit, hit rates. */
async function cliPhase(entries) {
  const http = require('node:http');
  const origin = http.createServer((req, res) => res.end(Buffer.alloc(1024, 'n'))).listen(0, '127.0.0.1');
  await new Promise((r) => origin.once('listening', r));
  const originUrl = `http://127.0.0.1:${origin.address().port}`;
  const clean = [];
  const killed = [];
  const firsts = [];
  let idle = null;
  for (let round = 0; round < 3; round++) {
    let cli = await startCli();
    clean.push(cli.listenMs);
    firsts.push(await firstHit(cli.port));
    if (round === 0) {
      await new Promise((r) => setTimeout(r, 2000));
      idle = rssMiB(cli.proc.pid);
    }
    // Writes since the start, then SIGKILL: the next start replays them from the journal.
    await through(cli.port, Array.from({ length: 2000 }, (_, i) => `${originUrl}/new/${round}/${i}`));
    await stopCli(cli, 'SIGKILL');
    cli = await startCli();
    killed.push(cli.listenMs);
    firsts.push(await firstHit(cli.port));
    await stopCli(cli, 'SIGTERM');
  }
  const cli = await startCli();
  const small = wrkRate(cli.port, 100);
  const t = performance.now();
  const hits = await through(cli.port, Array.from({ length: entries }, (_, i) => `http://127.0.0.1:9/1k.bin?entry=${i}`));
  const everySeconds = (performance.now() - t) / 1000;
  const afterAll = rssMiB(cli.proc.pid);
  const spread = wrkRate(cli.port, entries);
  const smallAgain = wrkRate(cli.port, 100);
  await stopCli(cli, 'SIGTERM');
  origin.close();
  const f = (xs) => xs.map((x) => x.toFixed(0)).join(' / ');
  console.log(`proxy listening after a clean stop: ${f(clean)} ms; after SIGKILL (2,000 writes before it): ${f(killed)} ms`);
  console.log(`a stored entry asked for at once after listening: ${firsts.map((r) => `${r.ms.toFixed(0)} ms ${r.hit ? 'hit' : 'NOT A HIT'}`).join(' / ')} (clean, killed, ...)`);
  console.log(`proxy RSS idle: ${idle.rss.toFixed(0)} MiB; after a request for every entry (${hits} of ${entries} hits, ${everySeconds.toFixed(1)} s): ${afterAll.rss.toFixed(0)} MiB (peak ${afterAll.peak.toFixed(0)} MiB)`);
  console.log(`fresh hits/s, wrk -c32, spread over 100 entries: ${small.toFixed(0)} then ${smallAgain.toFixed(0)}; spread over all ${entries}: ${spread.toFixed(0)}`);
}

async function main() {
  await populate();
  const baseline = spawnSync(process.execPath, ['--expose-gc', '-e', 'global.gc(); process.stdout.write(String(process.memoryUsage().rss))'], { encoding: 'utf8' });
  const emptyRss = Number(baseline.stdout);
  const clean = [openInChild('clean'), openInChild('clean'), openInChild('clean')];
  const killed = [];
  for (let i = 0; i < 3; i++) {
    openInChild('kill');
    killed.push(openInChild('clean-after-kill'));
    // That start stopped cleanly: kill again for the next round.
  }
  const disk = diskBytes(path.join(dir, 'store'));
  const bodies = (clean[0].entries) * 1024;
  const ms = (runs) => runs.map((r) => r.ms.toFixed(0)).join(' / ');
  console.log(`start-up after a clean stop: ${ms(clean)} ms (${clean[0].entries} entries, from the snapshot: ${clean[0].fromSnapshot})`);
  console.log(`start-up after SIGKILL:      ${ms(killed)} ms (journal records replayed: ${killed.map((r) => r.replayed).join(' / ')})`);
  console.log(`RSS idle with the index:     ${(clean[0].rss / MiB).toFixed(0)} MiB (a bare node process: ${(emptyRss / MiB).toFixed(0)} MiB)`);
  console.log(`disk: ${(disk / MiB).toFixed(0)} MiB for ${(bodies / MiB).toFixed(0)} MiB of bodies = ${(disk / bodies).toFixed(2)}x`);
  if (process.env.BENCH_CLI !== '0') await cliPhase(n);
  if (!keep) fs.rmSync(dir, { recursive: true, force: true });
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
