// Measures cache startup with N stored entries (default 10,000): from the clean-shutdown index,
// and from a metadata scan (as after a crash). Run after `npm run compile-tests`:
//   node scripts/bench-cache-startup.cjs [entries] [dir]
// Leaves the dir behind when one is given (for hit benchmarks on a big store): then
//   node dist/cli.js --cache-dir DIR --max-entries N --quiet --port P
//   wrk -t1 -c50 -d6s -s abs.lua http://127.0.0.1:P   (abs.lua: wrk.path = "http://127.0.0.1:9/item/5")
// Figures on the shared 2-core box (load average 6-10), 1 KiB bodies:
//   start from the index: 10 entries 10 ms, 10,000 entries 104-206 ms, 100,000 entries 0.5-0.8 s
//   metadata scan (after a crash): 10,000 entries 0.8-1.8 s, 100,000 entries 7-18 s
//   fresh hit: 100,000 entries 32.8k / 34.4k / 34.6k req/s vs 10 entries 38.1k / 38.5k / 28.2k (alternating runs)
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const CachePolicy = require('http-cache-semantics');
const { DiskStore, hashKey } = require('../out/src/cache/disk.js');
const { createCache } = require('../out/src/cache/index.js');
const { resolveConfig } = require('../out/src/core/config.js');
const { EventBus } = require('../out/src/core/events.js');

async function main() {
  const n = Number(process.argv[2] ?? 10_000);
  const keep = process.argv[3];
  const dir = keep ?? fs.mkdtempSync(path.join(os.tmpdir(), 'cp-bench-'));
  const { store } = await DiskStore.open(dir);
  const body = Buffer.alloc(1024, 'x');
  const raw = ['Content-Type', 'text/plain', 'Content-Length', '1024', 'Cache-Control', 'max-age=86400', 'Via', '1.1 caching-proxy'];
  let next = 0;
  const t0 = performance.now();
  const worker = async () => {
    while (next < n) {
      const i = next++;
      const url = `http://127.0.0.1:9/item/${i}`;
      const key = 'GET ' + url;
      const policy = new CachePolicy({ url, method: 'GET', headers: { host: '127.0.0.1:9' } }, { status: 200, headers: { 'cache-control': 'max-age=86400', 'content-length': '1024' } });
      const writer = store.newWriter();
      writer.write(body);
      const sha256 = await writer.finish();
      const record = { key, hash: hashKey(key), url, status: 200, size: body.length, sha256, storedAt: Date.now(), freshUntil: Date.now() + 86_400_000, hits: 0, contentType: 'text/plain', vary: null };
      await store.commit(writer, { ...record, v: 1, statusMessage: 'OK', raw, policy: policy.toObject() });
    }
  };
  await Promise.all(Array.from({ length: 32 }, worker));
  console.log(`wrote ${n} entries in ${Math.round(performance.now() - t0)} ms`);

  const config = resolveConfig({ cache: { dir, maxEntries: Math.max(n, 10_000) } }).cache;
  const deps = { events: new EventBus(), origin: { fetch: () => Promise.reject(new Error('no origin in this benchmark')) }, passThrough: async () => {} };
  const open = async (label) => {
    const t = performance.now();
    const cache = await createCache(config, deps);
    const ms = performance.now() - t;
    console.log(`${label}: ${cache.stats().entries} entries ready in ${ms.toFixed(0)} ms`);
    await cache.close();
  };
  await open('cold start, metadata scan (no index)');
  await open('start from the clean-shutdown index');
  fs.unlinkSync(path.join(dir, 'index.json'));
  await open('cold start, metadata scan (again, warm page cache)');
  await open('start from the clean-shutdown index (again)');
  if (!keep) fs.rmSync(dir, { recursive: true, force: true });
}
main().catch((err) => {
  console.error(err);
  process.exit(1);
});
