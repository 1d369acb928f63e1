import assert from 'node:assert/strict';
import test from 'node:test';
import { resolveConfig } from '../../src/core/config';
import { curl, viaProxy } from '../helpers/net';
import { withProxy } from './origin';

/** Milliseconds one curl request through the proxy takes, with its status and Cache-Status. */
async function timedCurl(proxyUrl: string, url: string): Promise<{ ms: number; status: number; cacheStatus: string; body: string }> {
  const started = performance.now();
  const r = await curl(['-x', proxyUrl, '-D', '-', url]);
  const ms = performance.now() - started;
  assert.equal(r.code, 0, r.stderr);
  const [head, ...rest] = r.stdout.split('\r\n\r\n');
  return {
    ms,
    status: Number(/^HTTP\/1\.1 (\d+)/.exec(head)?.[1]),
    cacheStatus: /^cache-status: (.*)$/im.exec(head)?.[1] ?? '',
    body: rest.join('\r\n\r\n'),
  };
}

test('delay: matching requests wait at least the rule\'s delay (cache hits on the quick path too); others do not wait', () =>
  withProxy({}, async (origin, p) => {
    const first = await timedCurl(p.url, `${origin.url}/max-age`);
    assert.match(first.cacheStatus, /stored/);
    // Live: the delay applies to what is already stored, and names no other URL.
    await p.proxy.update(resolveConfig({ ...p.proxy.config, rules: [{ name: 'slow-net', match: '127.0.0.1/max-age', delay: '400-450' }] }));
    const delayed = await timedCurl(p.url, `${origin.url}/max-age`);
    assert.equal(delayed.status, 200);
    assert.match(delayed.cacheStatus, /^caching-proxy; hit/);
    assert.ok(delayed.ms >= 400, `a delayed hit took ${delayed.ms} ms`);
    assert.equal(origin.count('/max-age'), 1, 'still a hit: the delay is in front of the cache');
    // Rules off again: the hit is immediate (well under the delay the rule had).
    await p.proxy.update(resolveConfig({ ...p.proxy.config, rules: [] }));
    const undelayed = await timedCurl(p.url, `${origin.url}/max-age`);
    assert.ok(undelayed.ms < 400, `without the rule a hit took ${undelayed.ms} ms`);
  }));

test('fail: the proxy answers the rule\'s status itself, names the rule in Cache-Status, and the origin sees nothing', () =>
  withProxy({ rules: [{ name: 'flaky-api', match: '*/etag', fail: { status: 503, rate: 1 } }] }, async (origin, p) => {
    const r = await timedCurl(p.url, `${origin.url}/etag`);
    assert.equal(r.status, 503);
    assert.equal(r.cacheStatus, 'caching-proxy; detail=simulated-failure; rule="flaky-api"');
    assert.match(r.body, /simulated 503 from rule "flaky-api"/);
    assert.equal(origin.count('/etag'), 0);
    const response = p.events.find((e) => e.type === 'response' && e.url.endsWith('/etag'));
    assert.ok(response && response.type === 'response' && response.cache?.includes('rule="flaky-api"'), 'the log line names the rule');
    const other = await viaProxy(p.port, `${origin.url}/max-age`);
    assert.equal(other.status, 200, 'the rule fails only what it matches');
  }));

test('fail rate: about that share of matching requests fail, the rest are answered normally', () =>
  withProxy({ rules: [{ match: '*/max-age', fail: { status: 502, rate: '30%' } }] }, async (origin, p) => {
    let failed = 0;
    const n = 200;
    for (let i = 0; i < n; i++) {
      const r = await viaProxy(p.port, `${origin.url}/max-age`);
      if (r.status === 502) {
        failed++;
        assert.equal(r.headers['cache-status'], 'caching-proxy; detail=simulated-failure; rule="rules[0]"');
      } else assert.equal(r.text, 'max-age v1');
    }
    // Binomial(200, 0.3): mean 60, sd 6.5; these bounds are over 4 sd away.
    assert.ok(failed > 30 && failed < 90, `${failed} of ${n} failed`);
  }));
