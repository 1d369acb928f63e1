// Fills a cache directory with N stored 1 KiB responses through the cache's own public
// storeResponse (what import-har uses), in-process: the million-entry phase of bench/run.mjs
// cannot wait for a million misses through the proxy (about 3,000/s). The URLs are
// http://127.0.0.1:9/1k.bin?m=<i>, fresh for a day: requests for them through the proxy are
// hits, and a miss fails (nothing listens on port 9), so a run shows if any was not a hit.
//   node bench/lib/fill-store.cjs DIR N      (needs npm run compile-tests: it loads out/src)
const path = require('node:path');
const root = path.resolve(__dirname, '../..');
const out = (p) => path.join(root, 'out/src', p);
const { createCache } = require(out('cache/index.js'));
const { resolveConfig } = require(out('core/config.js'));
const { EventBus } = require(out('core/events.js'));

const URL_BASE = 'http://127.0.0.1:9/1k.bin?m=';

async function fill(dir, n, concurrency = 16) {
  const events = new EventBus();
  events.on((e) => {
    if (e.type === 'notice' && e.level !== 'info') process.stderr.write(`fill-store: ${e.message}\n`);
  });
  const config = resolveConfig({ cache: { dir } });
  const cache = await createCache(config.cache, { events, origin: { fetch: () => Promise.reject(new Error('no origin')) } });
  const body = Buffer.alloc(1024, 'x');
  const t0 = performance.now();
  let next = 0;
  const worker = async () => {
    while (next < n) {
      const i = next++;
      const outcome = await cache.storeResponse({
        url: URL_BASE + i,
        requestHeaders: { host: '127.0.0.1:9' },
        status: 200,
        statusMessage: 'OK',
        rawHeaders: ['Content-Type', 'application/octet-stream', 'Content-Length', '1024', 'Cache-Control', 'max-age=86400', 'Date', new Date().toUTCString(), 'ETag', `"e${i}"`],
        body,
      });
      if (!outcome.stored) throw new Error(`entry ${i} not stored: ${outcome.reason}`);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  const stored = cache.stats().entries;
  await cache.close();
  return { stored, seconds: (performance.now() - t0) / 1000 };
}

module.exports = { fill, URL_BASE };

if (require.main === module) {
  fill(path.resolve(process.argv[2]), Number(process.argv[3])).then(
    (r) => console.log(JSON.stringify(r)),
    (err) => {
      console.error(err);
      process.exit(1);
    },
  );
}
