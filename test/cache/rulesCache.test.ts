import assert from 'node:assert/strict';
import type * as http from 'node:http';
import test from 'node:test';
import { resolveConfig, type ConfigInput } from '../../src/core/config';
import { startOrigin, startTestProxy, viaProxy, type TestOrigin, type TestProxy } from '../helpers/net';

/**
 * Rules and presets in the cache, against a real origin: what each rule changes, and that
 * Cache-Status, events and the entry list name the rule that applied.
 */

const ETAG = '"r1"';

function serve(req: http.IncomingMessage, res: http.ServerResponse): void {
  const path = new URL(req.url ?? '/', 'http://x').pathname;
  const send = (status: number, headers: Record<string, string>, body: string): void => {
    res.writeHead(status, { 'Content-Length': Buffer.byteLength(body), ...headers }).end(req.method === 'HEAD' ? undefined : body);
  };
  if (path === '/pool/main/plain_1.0_all.deb') return send(200, { 'Content-Type': 'application/vnd.debian.binary-package' }, 'deb without caching headers');
  if (path === '/pool/main/zero_1.0_all.deb') return send(200, { 'Cache-Control': 'max-age=0, must-revalidate' }, 'deb with max-age=0');
  if (path === '/pool/main/secret_1.0_all.deb') return send(200, { 'Cache-Control': 'no-store' }, 'deb that must not be kept');
  if (path === '/pool/main/missing_1.0_all.deb') return send(404, {}, 'not yet published');
  if (path === '/dists/stable/InRelease') {
    if (req.headers['if-none-match'] === ETAG) return send(304, { ETag: ETAG }, '');
    return send(200, { ETag: ETAG }, 'Origin: test\nSuite: stable\n');
  }
  if (path === '/api/fresh') return send(200, { 'Cache-Control': 'max-age=600' }, 'fresh api');
  send(404, {}, 'no such path');
}

async function withRules(input: ConfigInput, fn: (origin: TestOrigin, p: TestProxy) => Promise<void>): Promise<void> {
  const origin = await startOrigin(serve);
  const p = await startTestProxy(input);
  try {
    await fn(origin, p);
  } finally {
    await p.close();
    await origin.close();
  }
}

const status = (r: { headers: http.IncomingHttpHeaders }) => String(r.headers['cache-status']);

test('immutable (debian preset): an artifact without caching headers is stored for a year and named by its rule', () =>
  withRules({ presets: ['debian'] }, async (origin, p) => {
    const url = `${origin.url}/pool/main/plain_1.0_all.deb`;
    const first = await viaProxy(p.port, url);
    assert.equal(first.text, 'deb without caching headers');
    assert.equal(status(first), 'caching-proxy; fwd=miss; stored; rule="debian:package"');
    const second = await viaProxy(p.port, url);
    assert.match(status(second), /^caching-proxy; hit; ttl=(\d+); rule="debian:package"$/);
    const ttl = Number(/ttl=(\d+)/.exec(status(second))![1]);
    assert.ok(ttl > 364 * 86_400, `fresh for a year, not the default ttl: ${ttl}`);
    assert.equal(origin.count('/pool/main/plain_1.0_all.deb'), 1);
    const stored = p.events.find((e) => e.type === 'cache' && e.action === 'stored');
    assert.ok(stored && stored.type === 'cache' && stored.rule === 'debian:package', 'the stored event names the rule');
    assert.equal((await p.proxy.cache.list()).find((e) => e.url === url)?.rule, 'debian:package', 'the entry list (the Cached URLs view) names the rule');
  }));

test('immutable overrides max-age=0 and must-revalidate, never no-store; a 404 is not pinned', () =>
  withRules({ presets: ['debian'] }, async (origin, p) => {
    const zero = `${origin.url}/pool/main/zero_1.0_all.deb`;
    await viaProxy(p.port, zero);
    assert.match(status(await viaProxy(p.port, zero)), /^caching-proxy; hit; /);
    assert.equal(origin.count('/pool/main/zero_1.0_all.deb'), 1);

    const secret = `${origin.url}/pool/main/secret_1.0_all.deb`;
    assert.equal(status(await viaProxy(p.port, secret)), 'caching-proxy; fwd=miss; detail=no-store; rule="debian:package"');
    await viaProxy(p.port, secret);
    assert.equal(origin.count('/pool/main/secret_1.0_all.deb'), 2, 'no-store is obeyed');

    const missing = `${origin.url}/pool/main/missing_1.0_all.deb`;
    assert.equal((await viaProxy(p.port, missing)).status, 404);
    const again = await viaProxy(p.port, missing);
    assert.doesNotMatch(status(again), /^caching-proxy; hit/, 'a 404 without freshness is not kept fresh by the rule');
    assert.equal(origin.count('/pool/main/missing_1.0_all.deb'), 2);
  }));

test('revalidated metadata (debian:index): stored, checked with the origin every time, served stale when the origin is gone', async () => {
  const origin = await startOrigin(serve);
  const p = await startTestProxy({ presets: ['debian'] });
  try {
    const url = `${origin.url}/dists/stable/InRelease`;
    assert.equal(status(await viaProxy(p.port, url)), 'caching-proxy; fwd=miss; stored; rule="debian:index"');
    const second = await viaProxy(p.port, url);
    assert.equal(second.text, 'Origin: test\nSuite: stable\n');
    assert.match(status(second), /^caching-proxy; fwd=stale; fwd-status=304; ttl=0; rule="debian:index"$/);
    assert.equal(origin.requests.at(-1)?.headers['if-none-match'], ETAG, 'a conditional request');
    await origin.close();
    const offline = await viaProxy(p.port, url);
    assert.equal(offline.status, 200);
    assert.equal(offline.text, 'Origin: test\nSuite: stable\n');
    assert.match(status(offline), /detail=origin-unreachable; rule="debian:index"$/);
  } finally {
    await p.close();
    await origin.close();
  }
});

test('user rules: first match wins over presets; policy off bypasses even stored entries; a global offline wins over a rule', () =>
  withRules({ rules: [{ name: 'api', match: '127.0.0.1/api/**', ttl: '1h' }], presets: ['debian'] }, async (origin, p) => {
    const api = `${origin.url}/api/fresh`;
    assert.equal(status(await viaProxy(p.port, api)), 'caching-proxy; fwd=miss; stored; rule="api"');
    assert.match(status(await viaProxy(p.port, api)), /^caching-proxy; hit; ttl=\d+; rule="api"$/);
    // Live: the same URL under a rule that switches caching off.
    await p.proxy.update(resolveConfig({ ...p.proxy.config, rules: [{ name: 'no-api-cache', match: '*/api/**', policy: 'off' }] }));
    const off = await viaProxy(p.port, api);
    assert.equal(off.text, 'fresh api');
    assert.equal(status(off), 'caching-proxy; fwd=bypass; detail=policy-off; rule="no-api-cache"');
    assert.equal(origin.count('/api/fresh'), 2, 'the stored entry was not served');
    // A user rule before the preset takes a .deb out of it.
    await p.proxy.update(resolveConfig({ ...p.proxy.config, rules: [{ name: 'debs-short', match: '*/pool/**/*.deb', ttl: 60 }] }));
    const deb = await viaProxy(p.port, `${origin.url}/pool/main/plain_1.0_all.deb`);
    assert.equal(status(deb), 'caching-proxy; fwd=miss; stored; rule="debs-short"');
    const hit = await viaProxy(p.port, `${origin.url}/pool/main/plain_1.0_all.deb`);
    assert.ok(Number(/ttl=(\d+)/.exec(status(hit))![1]) <= 60);
    // Offline for everyone: stored entries only, whatever the rules say.
    await p.proxy.update(resolveConfig({ ...p.proxy.config, cache: { ...p.proxy.config.cache, policy: 'offline' }, rules: [{ name: 'online', match: '*', policy: 'standard' }] }));
    const before = origin.requests.length;
    assert.equal((await viaProxy(p.port, `${origin.url}/pool/main/zero_1.0_all.deb`)).status, 504);
    assert.equal(origin.requests.length, before, 'an offline proxy never reaches the origin');
  }));
