import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as http from 'node:http';
import { mkdtempSync, rmSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { startTestProxy, waitFor } from '../helpers/net';
import { startBadOrigin, FAULTS } from './lib/badOrigin';
import { openFds, rssBytes, spawnProxy } from './lib/child';

/** Origins that misbehave: the client gets a clean error, nothing is stored, nothing leaks. */

export interface Outcome {
  /** Status of the response head, if one arrived. */
  status?: number;
  /** The body arrived whole (its framing said it was complete). */
  complete: boolean;
  body: string;
  /** The request failed before any response head (connection-level error). */
  error?: string;
}

/** One GET through the proxy on a fresh connection, reporting exactly what a client sees. */
export function fetchOutcome(proxyPort: number, url: string): Promise<Outcome> {
  return new Promise((resolve) => {
    const req = http.request({ host: '127.0.0.1', port: proxyPort, path: url, headers: { host: new URL(url).host }, agent: false });
    req.on('response', (res) => {
      let body = '';
      let done = false;
      const finish = () => {
        if (done) return;
        done = true;
        resolve({ status: res.statusCode, complete: res.complete, body });
      };
      res.setEncoding('latin1');
      res.on('data', (c: string) => (body += c));
      res.on('end', finish);
      res.on('error', finish);
      res.on('close', finish);
    });
    req.on('error', (err: NodeJS.ErrnoException) => resolve({ complete: false, body: '', error: err.code ?? err.message }));
    req.end();
  });
}

test('each origin failure: 502/504 before the head, a broken connection after it, nothing stored, the proxy still serves', async () => {
  const origin = await startBadOrigin();
  const dir = mkdtempSync(path.join(os.tmpdir(), 'faults-origin-'));
  const p = await startTestProxy({ timeoutSeconds: 0.3, cache: { dir } });
  try {
    const cases: Array<[string, (o: Outcome) => void]> = [
      ['/close-mid-body', (o) => assert.ok(o.status === 200 && !o.complete && o.body.length < 100_000, JSON.stringify(o).slice(0, 200))],
      ['/short-length', (o) => assert.ok(o.status === 200 && !o.complete && o.body.length < 5000, JSON.stringify(o).slice(0, 200))],
      ['/stall-body', (o) => assert.ok(o.status === 200 && !o.complete && o.body.length < 100_000, JSON.stringify(o).slice(0, 200))],
      ['/stall-head', (o) => { assert.equal(o.status, 504); assert.match(o.body, /did not answer/); }],
      ['/bad-status', (o) => { assert.equal(o.status, 502); assert.match(o.body, /invalid HTTP response/); }],
      ['/not-http', (o) => { assert.equal(o.status, 502); assert.match(o.body, /invalid HTTP response|closed the connection/); }],
      ['/hang-up', (o) => { assert.equal(o.status, 502); assert.match(o.body, /closed the connection/); }],
      ['/reset', (o) => { assert.equal(o.status, 502); assert.match(o.body, /closed the connection|reset/); }],
      ['/long-length', (o) => assert.deepEqual([o.status, o.complete, o.body], [200, true, '0123456789'])],
    ];
    for (const [fault, check] of cases) {
      const url = `${origin.url}${fault}`;
      check(await fetchOutcome(p.port, url));
      const hitsBefore = origin.hits.get(fault) ?? 0;
      if (fault !== '/long-length') {
        // Asked again: not answered from a cache (it reaches the origin again), same clean failure.
        check(await fetchOutcome(p.port, url));
        assert.equal(origin.hits.get(fault), hitsBefore + 1, `${fault} was asked of the origin again`);
      }
      if (fault === '/long-length') {
        // The response itself was complete by its Content-Length: storing it is fine, but only
        // those 10 bytes, never what the origin sent after them.
        check(await fetchOutcome(p.port, url));
      } else {
        assert.ok(!(await p.proxy.cache.list()).some((e) => e.url === url), `${fault} is not in the cache`);
      }
      // The pooled origin connection is not poisoned: the next answers are the origin's real ones.
      for (let i = 0; i < 3; i++) {
        const ok = await fetchOutcome(p.port, `${origin.url}/ok/${fault.slice(1)}-${i}`);
        assert.deepEqual([ok.status, ok.body], [200, 'hello, fine\n'], `after ${fault}`);
      }
    }
  } finally {
    await p.close();
    await origin.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('2 × 10,000 failing origin exchanges leak no file descriptors and no memory in the proxy process', async () => {
  const origin = await startBadOrigin();
  const proxy = await spawnProxy(['--memory-only', '--timeout', '0.2', '--log-level', 'error']);
  const total = 10_000;
  const concurrency = 64;
  const kinds = [...FAULTS, '/ok'];
  const tally = new Map<string, number>();
  let next = 0;
  const run = async (count: number) => {
    const limit = next + count;
    const worker = async () => {
      while (next < limit) {
        const n = next++;
        const kind = kinds[n % kinds.length];
        const o = await fetchOutcome(proxy.port, `${origin.url}${kind}?n=${n}`);
        const key = `${kind} → ${o.error ?? o.status}${o.status === 200 && !o.complete ? ' broken' : ''}`;
        tally.set(key, (tally.get(key) ?? 0) + 1);
      }
    };
    await Promise.all(Array.from({ length: concurrency }, worker));
  };
  const settle = async () => {
    // Idle pooled origin connections and closing sockets go away on their own; wait for that, then measure.
    await waitFor(() => origin.open() <= 8, 'origin connections to close', 15_000).catch(() => {});
    await new Promise((r) => setTimeout(r, 300));
  };
  try {
    await run(1000); // warm-up: JIT, pools, buffers
    await settle();
    const fdsBefore = openFds(proxy.pid);
    const rssBefore = rssBytes(proxy.pid);
    await run(total);
    await settle();
    const fdsAfter = openFds(proxy.pid);
    const rssAfter = rssBytes(proxy.pid);
    // A second round tells a leak (grows again by the same amount) from the heap settling at its
    // working size (it does not): measured 120 → 133 → 125 → 142 MB over four rounds of 10,000.
    await run(total);
    await settle();
    const fdsAgain = openFds(proxy.pid);
    const rssAgain = rssBytes(proxy.pid);
    const mb = (n: number) => (n / 1024 / 1024).toFixed(1);
    console.log(`origin faults: ${next} exchanges; fds ${fdsBefore} → ${fdsAfter} → ${fdsAgain}; RSS ${mb(rssBefore)} → ${mb(rssAfter)} → ${mb(rssAgain)} MB`);
    console.log(`outcomes: ${JSON.stringify(Object.fromEntries([...tally].sort()))}`);
    assert.ok(proxy.alive(), 'the proxy survived');
    assert.ok(fdsAfter <= fdsBefore + 10 && fdsAgain <= fdsBefore + 10, `open fds grew from ${fdsBefore} to ${fdsAfter} and ${fdsAgain}`);
    assert.ok(rssAfter <= rssBefore + 96 * 1024 * 1024, `RSS grew from ${mb(rssBefore)} to ${mb(rssAfter)} MB over the first 10,000`);
    // 48 MB per 10,000 exchanges = 5 KB each: a leaked socket, request or parser per exchange is far above that.
    assert.ok(rssAgain <= rssAfter + 48 * 1024 * 1024, `RSS grew again from ${mb(rssAfter)} to ${mb(rssAgain)} MB over the next 10,000: a leak`);
    // Every fault was answered the way a client can tell apart.
    for (const key of tally.keys()) assert.match(key, /→ (200|502|504)( broken)?$/, key);
    const ok = await fetchOutcome(proxy.port, `${origin.url}/ok/final`);
    assert.deepEqual([ok.status, ok.body], [200, 'hello, fine\n']);
  } finally {
    await proxy.stop();
    await origin.close();
  }
});

// Node 20 leaks the HTTP parser of such a connection (nodejs/node PR #60187); the origin client works around it.
test(
  'an origin that sends bytes after a complete response on a kept-alive connection leaks no memory',
  async () => {
    const origin = await startBadOrigin();
    const proxy = await spawnProxy(['--memory-only', '--timeout', '2', '--log-level', 'error']);
    try {
      const batch = async (n: number) => {
        for (let i = 0; i < n; i += 32) await Promise.all(Array.from({ length: 32 }, (_, k) => fetchOutcome(proxy.port, `${origin.url}/long-length?i=${i + k}`)));
      };
      // The first rounds grow the heap to its working size; the leak shows as growth that goes on.
      await batch(3000);
      const before = rssBytes(proxy.pid);
      await batch(6000);
      const after = rssBytes(proxy.pid);
      console.log(`double responses: RSS ${(before / 1048576).toFixed(1)} → ${(after / 1048576).toFixed(1)} MB over the next 6,000`);
      // Measured: +11 to +22 MB with the workaround (heap settling), +69 MB without it.
      assert.ok(after <= before + 40 * 1024 * 1024, `RSS grew by ${((after - before) / 1048576).toFixed(1)} MB`);
    } finally {
      await proxy.stop();
      await origin.close();
    }
  },
);
