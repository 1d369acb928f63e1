// The disk store with N stored entries of 1 KiB (default 100,000): start-up after a clean stop
// and after SIGKILL, resident memory idle, disk usage against the bodies' bytes. Each start is a
// fresh process (node -e), so its RSS is that of a process holding only the store's index.
// Run after `npm run compile-tests`:
//   node scripts/bench-cache-startup.cjs [entries] [dir] [writes before each SIGKILL, default 2000]
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
  return {
    v: 1, key, hash: hashKey(key), url, status: 200, size: 1024, digest: '', storedAt: now, freshUntil: now + 86_400_000, hits: 0,
    contentType: 'application/octet-stream', vary: null, statusMessage: 'OK',
    raw: ['Content-Type', 'application/octet-stream', 'Content-Length', '1024', 'Cache-Control', 'max-age=86400', 'Date', headers.date, 'Via', '1.1 caching-proxy'],
    policy: policy.toObject(),
  };
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
  if (!keep) fs.rmSync(dir, { recursive: true, force: true });
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
