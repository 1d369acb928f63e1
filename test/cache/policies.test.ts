import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as http from 'node:http';
import { curl, viaProxy, waitFor } from '../helpers/net';
import { cacheEvents, withProxy } from './origin';

test('concurrent misses for one key make one origin request; the others are answered from it', () =>
  withProxy({}, async (origin, p) => {
    const release = origin.hold('/slow');
    const pending = Promise.all(Array.from({ length: 6 }, () => viaProxy(p.port, `${origin.url}/slow`)));
    await waitFor(() => cacheEvents(p, 'coalesced').length === 5, 'five requests waiting behind the first');
    release();
    const results = await pending;
    for (const r of results) assert.equal(r.text, 'slow body!');
    assert.equal(origin.count('/slow'), 1);
    const statuses = results.map((r) => r.headers['cache-status']).sort();
    assert.equal(statuses.filter((s) => s === 'caching-proxy; fwd=miss; collapsed').length, 5);
    assert.equal(cacheEvents(p, 'coalesced').length, 5);
  }));

test('concurrent misses for a large body (disk tier) also make one origin request', async () => {
  const fs = await import('node:fs');
  const os = await import('node:os');
  const path = await import('node:path');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cp-coalesce-'));
  try {
    await withProxy({ cache: { dir, maxMemoryMB: 1 } }, async (origin, p) => {
      const size = 4 * 1024 * 1024;
      const results = await Promise.all(Array.from({ length: 4 }, () => viaProxy(p.port, `${origin.url}/big?size=${size}`)));
      const expected = Buffer.alloc(size, 'v1');
      for (const r of results) assert.ok(r.body.equals(expected));
      assert.equal(origin.count(`/big?size=${size}`), 1);
    });
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('concurrent requests for a stale entry make one revalidation request (no expiry stampede)', () =>
  withProxy({}, async (origin, p) => {
    await viaProxy(p.port, `${origin.url}/stampede`);
    const release = origin.hold('/stampede');
    const pending = Promise.all(Array.from({ length: 5 }, () => viaProxy(p.port, `${origin.url}/stampede`)));
    await waitFor(() => cacheEvents(p, 'coalesced').length === 4, 'four requests waiting behind the revalidation');
    release();
    const results = await pending;
    for (const r of results) assert.equal(r.text, 'stampede v1');
    assert.equal(origin.count('/stampede'), 2);
    assert.equal(results.filter((r) => /fwd=stale; fwd-status=304/.test(String(r.headers['cache-status']))).length, 1);
    assert.equal(results.filter((r) => /; hit; /.test(String(r.headers['cache-status']))).length, 4);
  }));

test('coalesced waiters of an unstorable response each fetch for themselves', () =>
  withProxy({}, async (origin, p) => {
    const results = await Promise.all(Array.from({ length: 3 }, () => viaProxy(p.port, `${origin.url}/no-store`)));
    for (const r of results) assert.equal(r.text, 'no-store body');
    assert.equal(origin.count('/no-store'), 3);
  }));

test('a leader that leaves before the response starts does not strand the requests waiting on its fetch', () =>
  withProxy({}, async (origin, p) => {
    const release = origin.hold('/held-headers');
    const leader = http.get({ host: '127.0.0.1', port: p.port, path: `${origin.url}/held-headers` });
    leader.on('error', () => {});
    await waitFor(() => origin.count('/held-headers') === 1, 'the leader at the origin');
    const waiter = viaProxy(p.port, `${origin.url}/held-headers`);
    await waitFor(() => cacheEvents(p, 'coalesced').length === 1, 'a second request waiting on the leader');
    leader.destroy();
    await waitFor(() => p.events.some((e) => e.type === 'response' && e.aborted === true), 'the proxy to see the leader gone');
    release();
    const r = await Promise.race([waiter, new Promise<never>((_, reject) => setTimeout(() => reject(new Error('the waiter was stranded')), 5000))]);
    assert.equal(r.text, 'held body');
    assert.equal(origin.count('/held-headers'), 1);
    assert.match(String((await viaProxy(p.port, `${origin.url}/held-headers`)).headers['cache-status']), /; hit; /);
  }));

test('once a URL proved uncacheable, concurrent requests for it go to the origin at once instead of queueing', () =>
  withProxy({}, async (origin, p) => {
    assert.equal((await viaProxy(p.port, `${origin.url}/slow-no-store`)).text, 'slow body!');
    const release = origin.hold('/slow-no-store');
    const pending = Promise.all(Array.from({ length: 3 }, () => viaProxy(p.port, `${origin.url}/slow-no-store`)));
    // With the origin holding every answer, all three can only be there if none waits for another.
    await waitFor(() => origin.count('/slow-no-store') === 4, 'all three requests at the origin together');
    release();
    for (const r of await pending) assert.equal(r.text, 'slow body!');
    assert.equal(cacheEvents(p, 'coalesced').length, 0);
  }));

test('policy "always": stores successful GETs for ttl whatever the headers say', () =>
  withProxy({ cache: { policy: 'always', ttl: 30 } }, async (origin, p) => {
    for (const path of ['/no-store', '/private', '/cookie', '/stale']) {
      await viaProxy(p.port, origin.url + path);
      const hit = await viaProxy(p.port, origin.url + path);
      assert.match(String(hit.headers['cache-status']), /^caching-proxy; hit; ttl=(29|30)$/, path);
      assert.equal(origin.count(path), 1, path);
    }
    await viaProxy(p.port, `${origin.url}/nothing-here`);
    await viaProxy(p.port, `${origin.url}/nothing-here`);
    assert.equal(origin.count('/nothing-here'), 2, 'a 404 is not a success');
  }));

test('policy "offline": serves what is stored (stale too), 504 for the rest, never contacts the origin', () =>
  withProxy({}, async (origin, p) => {
    await viaProxy(p.port, `${origin.url}/max-age`);
    await viaProxy(p.port, `${origin.url}/stale`);
    const config = p.proxy.config;
    await p.proxy.update({ ...config, cache: { ...config.cache, policy: 'offline' } });
    const before = origin.requests.length;
    const fresh = await viaProxy(p.port, `${origin.url}/max-age`);
    assert.match(String(fresh.headers['cache-status']), /^caching-proxy; hit; ttl=\d+; detail=offline$/);
    const stale = await viaProxy(p.port, `${origin.url}/stale`);
    assert.equal(stale.text, 'stale v1');
    assert.match(String(stale.headers['cache-status']), /ttl=-?\d+; detail=offline/);
    const miss = await viaProxy(p.port, `${origin.url}/expires`);
    assert.equal(miss.status, 504);
    assert.match(miss.text, /not in the cache/);
    const post = await viaProxy(p.port, `${origin.url}/item`, { method: 'POST', body: 'x' });
    assert.equal(post.status, 504);
    assert.equal(origin.requests.length, before);
  }));

test('policy "off": pure pass-through, no Cache-Status, nothing stored', () =>
  withProxy({ cache: { policy: 'off' } }, async (origin, p) => {
    const a = await viaProxy(p.port, `${origin.url}/max-age`);
    await viaProxy(p.port, `${origin.url}/max-age`);
    assert.equal(a.headers['cache-status'], undefined);
    assert.equal(origin.count('/max-age'), 2);
    assert.equal((await p.proxy.cache.list()).length, 0);
  }));

test('admitAfter: a URL is stored from its Nth request', () =>
  withProxy({ cache: { admitAfter: 3 } }, async (origin, p) => {
    const statuses: string[] = [];
    for (let i = 0; i < 4; i++) statuses.push(String((await viaProxy(p.port, `${origin.url}/max-age`)).headers['cache-status']));
    assert.deepEqual(statuses.slice(0, 3), [
      'caching-proxy; fwd=miss; detail=admit-after-3',
      'caching-proxy; fwd=miss; detail=admit-after-3',
      'caching-proxy; fwd=miss; stored',
    ]);
    assert.match(statuses[3], /; hit; /);
    assert.equal(origin.count('/max-age'), 3);
  }));

test('maxEntries: the least recently used entry is evicted first', () =>
  withProxy({ cache: { maxEntries: 2 } }, async (origin, p) => {
    await viaProxy(p.port, `${origin.url}/max-age`);
    await viaProxy(p.port, `${origin.url}/expires`);
    await viaProxy(p.port, `${origin.url}/max-age`); // now /expires is the least recently used
    await viaProxy(p.port, `${origin.url}/s-maxage`);
    assert.deepEqual(cacheEvents(p, 'evicted').map((e) => e.url), [`${origin.url}/expires`]);
    await viaProxy(p.port, `${origin.url}/max-age`);
    await viaProxy(p.port, `${origin.url}/expires`);
    assert.equal(origin.count('/max-age'), 1);
    assert.equal(origin.count('/expires'), 2);
  }));

test('maxMemoryMB bounds a memory-only cache by bytes', () =>
  withProxy({ cache: { maxMemoryMB: 1 } }, async (origin, p) => {
    for (const n of [1, 2, 3]) await viaProxy(p.port, `${origin.url}/big?size=${400_000 + n}`);
    assert.ok(p.proxy.cache.stats().memoryBytes <= 1024 * 1024);
    assert.equal((await p.proxy.cache.list()).length, 2);
    assert.equal(cacheEvents(p, 'evicted').length, 1);
  }));

test('excludeContentTypes: matching types are never stored (wildcards allowed)', () =>
  withProxy({ cache: { excludeContentTypes: ['image/*', 'application/x-nothing'] } }, async (origin, p) => {
    await viaProxy(p.port, `${origin.url}/image`);
    const again = await viaProxy(p.port, `${origin.url}/image`);
    assert.equal(again.headers['cache-status'], 'caching-proxy; fwd=miss; detail=excluded-type');
    assert.equal(origin.count('/image'), 2);
    await viaProxy(p.port, `${origin.url}/max-age`);
    await viaProxy(p.port, `${origin.url}/max-age`);
    assert.equal(origin.count('/max-age'), 1);
  }));

test('prefetchLinks: same-origin href/src of a stored HTML page are fetched in the background', () =>
  withProxy({ cache: { prefetchLinks: 3 } }, async (origin, p) => {
    await viaProxy(p.port, `${origin.url}/page`);
    await waitFor(() => cacheEvents(p, 'prefetched').length === 3, 'three prefetches');
    assert.deepEqual(cacheEvents(p, 'prefetched').map((e) => e.url).sort(), [`${origin.url}/about`, `${origin.url}/app.js`, `${origin.url}/style.css`]);
    const css = await viaProxy(p.port, `${origin.url}/style.css`);
    assert.equal(css.text, 'asset /style.css');
    assert.match(String(css.headers['cache-status']), /; hit; /);
    assert.equal(origin.count('/style.css'), 1);
    assert.equal(origin.count('/img.png'), 0, 'only N links');
    assert.equal(origin.count('/commented-out'), 0, 'comments are not markup');
    assert.equal(origin.requests.filter((r) => r.url.startsWith('/about')).length, 1, 'fragments are not separate URLs');
  }));

test('prefetchLinks: never more than 4 prefetches at once', () =>
  withProxy({ cache: { prefetchLinks: 8 } }, async (origin, p) => {
    await viaProxy(p.port, `${origin.url}/page8`);
    await waitFor(() => cacheEvents(p, 'prefetched').length === 8, 'eight prefetches');
    assert.equal(origin.state.maxInFlight, 4);
    assert.equal(origin.requests.filter((r) => r.url.startsWith('/slow-asset')).length, 8);
  }));

test('closing the proxy cancels a prefetch still waiting on its origin', { timeout: 10_000 }, async () => {
  const { startCaseOrigin } = await import('./origin');
  const { startTestProxy } = await import('../helpers/net');
  const origin = await startCaseOrigin();
  const release = origin.hold('/slow');
  const p = await startTestProxy({ cache: { prefetchLinks: 1 } });
  try {
    await viaProxy(p.port, `${origin.url}/page-slow`);
    await waitFor(() => origin.count('/slow') === 1, 'the prefetch reaching the origin');
    await p.close(); // would wait for the held body if background fetches were not cancelled
    assert.equal(cacheEvents(p, 'prefetched').length, 0);
  } finally {
    release();
    await origin.close();
  }
});

test('prefetchLinks 0 (default): nothing is prefetched', () =>
  withProxy({}, async (origin, p) => {
    await viaProxy(p.port, `${origin.url}/page`);
    await viaProxy(p.port, `${origin.url}/page`);
    assert.equal(origin.requests.length, 1);
  }));

test('core API: list, read, purge, purgeHost, purgeAll, revalidate, stats', () =>
  withProxy({}, async (origin, p) => {
    const cache = p.proxy.cache;
    await viaProxy(p.port, `${origin.url}/max-age`);
    await viaProxy(p.port, `${origin.url}/max-age`);
    await viaProxy(p.port, `${origin.url}/etag`);
    const list = await cache.list();
    assert.equal(list.length, 2);
    const maxAge = list.find((e) => e.url.endsWith('/max-age'))!;
    assert.equal(maxAge.status, 200);
    assert.equal(maxAge.size, 10);
    assert.equal(maxAge.hits, 1);
    assert.equal(maxAge.fresh, true);
    assert.ok(maxAge.ttl > 50);
    assert.equal(maxAge.headers['cache-control'], 'max-age=60');
    const stored = await cache.read(maxAge.key);
    assert.equal(stored?.body.toString(), 'max-age v1');
    assert.equal(stored?.headers['Cache-Control'], 'max-age=60');
    assert.deepEqual(cache.stats(), { entries: 2, bytes: 17, memoryBytes: 17, hits: 1, misses: 2 });

    const etag = list.find((e) => e.url.endsWith('/etag'))!;
    const summary = await cache.revalidate(etag.key);
    assert.equal(summary?.url, `${origin.url}/etag`);
    assert.equal(origin.requests.at(-1)?.headers['if-none-match'], '"v1"');
    assert.equal(cacheEvents(p, 'revalidated')[0].reason, '304');

    assert.equal(await cache.purge(maxAge.key), true);
    assert.equal(await cache.purge(maxAge.key), false);
    await viaProxy(p.port, `${origin.url}/max-age`);
    assert.equal(origin.count('/max-age'), 2);
    assert.equal(await cache.purgeHost('elsewhere.example'), 0);
    assert.equal(await cache.purgeHost(`127.0.0.1:${origin.port}`), 2);
    await viaProxy(p.port, `${origin.url}/max-age`);
    assert.equal(await cache.purgeAll(), 1);
    assert.equal((await cache.list()).length, 0);
    assert.ok(cacheEvents(p, 'purged').length >= 3);
  }));

test('a HEAD miss passes through and stores nothing', () =>
  withProxy({}, async (origin, p) => {
    const head = await viaProxy(p.port, `${origin.url}/max-age`, { method: 'HEAD' });
    assert.equal(head.status, 200);
    assert.equal(head.headers['cache-status'], 'caching-proxy; fwd=miss');
    const get = await viaProxy(p.port, `${origin.url}/max-age`);
    assert.equal(get.text, 'max-age v1');
    assert.equal(origin.count('/max-age'), 2);
  }));

test('path-style requests are cached too (http://proxy/host:port/path)', () =>
  withProxy({}, async (origin, p) => {
    const get = (path: string) =>
      new Promise<{ status: number; body: string; cacheStatus?: string }>((resolve, reject) => {
        http
          .get({ host: '127.0.0.1', port: p.port, path: `/127.0.0.1:${origin.port}${path}`, agent: false }, (res) => {
            let body = '';
            res.on('data', (c) => (body += c));
            res.on('end', () => resolve({ status: res.statusCode ?? 0, body, cacheStatus: res.headers['cache-status'] as string | undefined }));
          })
          .on('error', reject);
      });
    assert.equal((await get('/max-age')).body, 'max-age v1');
    const hit = await get('/max-age');
    assert.equal(hit.body, 'max-age v1');
    assert.match(String(hit.cacheStatus), /; hit; /);
    assert.equal(origin.count('/max-age'), 1);
  }));

test('the response log line carries what the cache did', () =>
  withProxy({}, async (origin, p) => {
    await viaProxy(p.port, `${origin.url}/max-age`);
    await viaProxy(p.port, `${origin.url}/max-age`);
    await waitFor(() => p.events.filter((e) => e.type === 'response').length === 2, 'two response events');
    const responses = p.events.filter((e) => e.type === 'response') as Array<{ cache?: string; bytes: number }>;
    assert.equal(responses[0].cache, 'fwd=miss; stored');
    assert.match(String(responses[1].cache), /^hit; ttl=\d+$/);
    assert.equal(responses[0].bytes, 10);
    assert.equal(responses[1].bytes, 10);
  }));

/** Starts a GET through the proxy and destroys it once the first body bytes arrive. */
function abortAfterFirstBytes(proxyPort: number, target: string, when: () => Promise<void> = async () => {}): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port: proxyPort, path: target, headers: { host: new URL(target).host }, agent: false });
    req.on('response', (res) => {
      res.once('data', (c: Buffer) => {
        void when().then(() => {
          req.destroy();
          resolve(c.length);
        }, reject);
      });
    });
    req.on('error', (err) => (req.destroyed ? undefined : reject(err)));
    req.end();
  });
}

test('a client going away mid-miss stores nothing (nobody else wanted the body) and the next request works', () =>
  withProxy({}, async (origin, p) => {
    await abortAfterFirstBytes(p.port, `${origin.url}/slow`);
    await waitFor(() => cacheEvents(p, 'not-stored').length === 1, 'the abandoned fill');
    assert.equal((await p.proxy.cache.list()).length, 0);
    const r = await viaProxy(p.port, `${origin.url}/slow`);
    assert.equal(r.text, 'slow body!');
    assert.equal(origin.count('/slow'), 2);
  }));

test('a client going away mid-miss while others wait: the body is still fetched, stored and served to them', () =>
  withProxy({}, async (origin, p) => {
    const release = origin.hold('/slow');
    const leader = abortAfterFirstBytes(p.port, `${origin.url}/slow`, () => waitFor(() => cacheEvents(p, 'coalesced').length === 2, 'two waiters'));
    await waitFor(() => origin.count('/slow') === 1, 'the leader reaching the origin');
    const waiters = Promise.all([viaProxy(p.port, `${origin.url}/slow`), viaProxy(p.port, `${origin.url}/slow`)]);
    await leader;
    release();
    for (const r of await waiters) assert.equal(r.text, 'slow body!');
    assert.equal(origin.count('/slow'), 1);
    assert.equal((await p.proxy.cache.list()).length, 1);
  }));

test('a chunked response (no Content-Length) is stored while streamed and hits carry its length', () =>
  withProxy({}, async (origin, p) => {
    const size = 5 * 64 * 1024;
    const first = await viaProxy(p.port, `${origin.url}/chunked-big?size=${size}`);
    assert.equal(first.headers['transfer-encoding'], 'chunked');
    assert.equal(first.body.length, size);
    const hit = await viaProxy(p.port, `${origin.url}/chunked-big?size=${size}`);
    assert.equal(hit.headers["content-length"], String(size));
    assert.ok(hit.body.equals(first.body));
    assert.equal(origin.count(`/chunked-big?size=${size}`), 1);
  }));

test('Range requests on a stored response get 206 / 416 from the cache (memory and disk tiers)', async () => {
  const fs = await import('node:fs');
  const os = await import('node:os');
  const path = await import('node:path');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cp-range-'));
  try {
    await withProxy({ cache: { dir, maxMemoryMB: 1 } }, async (origin, p) => {
      const small = `${origin.url}/big?size=1000`;
      const large = `${origin.url}/big?size=2000000`;
      const fullSmall = (await viaProxy(p.port, small)).body;
      const fullLarge = (await viaProxy(p.port, large)).body;
      const first = await viaProxy(p.port, small, { headers: { range: 'bytes=0-9' } });
      assert.equal(first.status, 206);
      assert.equal(first.headers['content-range'], 'bytes 0-9/1000');
      assert.equal(first.headers['content-length'], '10');
      assert.ok(first.body.equals(fullSmall.subarray(0, 10)));
      assert.match(String(first.headers['cache-status']), /; hit; /);
      const suffix = await viaProxy(p.port, small, { headers: { range: 'bytes=-5' } });
      assert.equal(suffix.headers['content-range'], 'bytes 995-999/1000');
      const open = await viaProxy(p.port, small, { headers: { range: 'bytes=990-' } });
      assert.equal(open.body.length, 10);
      const beyond = await viaProxy(p.port, small, { headers: { range: 'bytes=5000-' } });
      assert.equal(beyond.status, 416);
      assert.equal(beyond.headers['content-range'], 'bytes */1000');
      const multi = await viaProxy(p.port, small, { headers: { range: 'bytes=0-1,5-6' } });
      assert.equal(multi.status, 200, 'multiple ranges: the whole response');
      const stale = await viaProxy(p.port, small, { headers: { range: 'bytes=0-9', 'if-range': '"other"' } });
      assert.equal(stale.status, 200, 'If-Range that does not match: the whole response');
      const fromDisk = await viaProxy(p.port, large, { headers: { range: 'bytes=1000000-1000009' } });
      assert.equal(fromDisk.status, 206);
      assert.ok(fromDisk.body.equals(fullLarge.subarray(1_000_000, 1_000_010)));
      await viaProxy(p.port, `${origin.url}/max-age`);
      const curlRange = await curl(['-x', p.url, '-r', '0-3', `${origin.url}/max-age`]);
      assert.equal(curlRange.stdout, 'max-');
      assert.equal(origin.count('/big?size=1000'), 1);
      assert.equal(origin.count('/big?size=2000000'), 1);
    });
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
