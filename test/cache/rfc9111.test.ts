import { test } from 'node:test';
import assert from 'node:assert/strict';
import { viaProxy, waitFor } from '../helpers/net';
import { cacheEvents, LAST_MODIFIED, withProxy } from './origin';

test('max-age: the second GET is a fresh hit with Age and Cache-Status, the origin sees one request', () =>
  withProxy({}, async (origin, p) => {
    const first = await viaProxy(p.port, `${origin.url}/max-age`);
    assert.equal(first.status, 200);
    assert.equal(first.text, 'max-age v1');
    assert.equal(first.headers['cache-status'], 'caching-proxy; fwd=miss; stored');
    const second = await viaProxy(p.port, `${origin.url}/max-age`);
    assert.equal(second.text, 'max-age v1');
    assert.match(String(second.headers['cache-status']), /^caching-proxy; hit; ttl=(59|60)$/);
    assert.match(String(second.headers.age), /^\d+$/);
    assert.equal(second.headers['content-type'], 'text/plain');
    assert.equal(origin.count('/max-age'), 1);
    assert.deepEqual(cacheEvents(p).map((e) => e.action), ['miss', 'stored', 'hit']);
    const log = p.events.filter((e) => e.type === 'response').map((e) => (e as { cache?: string }).cache);
    assert.equal(log[1]?.startsWith('hit; ttl='), true);
  }));

test('Expires and s-maxage give freshness; an Expires in the past does not', () =>
  withProxy({}, async (origin, p) => {
    for (const path of ['/expires', '/s-maxage', '/expired']) {
      await viaProxy(p.port, origin.url + path);
      await viaProxy(p.port, origin.url + path);
    }
    assert.equal(origin.count('/expires'), 1);
    assert.equal(origin.count('/s-maxage'), 1);
    assert.equal(origin.count('/expired'), 2);
  }));

test('HEAD is answered from a stored GET, with headers and no body', () =>
  withProxy({}, async (origin, p) => {
    await viaProxy(p.port, `${origin.url}/max-age`);
    const head = await viaProxy(p.port, `${origin.url}/max-age`, { method: 'HEAD' });
    assert.equal(head.status, 200);
    assert.equal(head.body.length, 0);
    assert.equal(head.headers['content-length'], '10');
    assert.match(String(head.headers['cache-status']), /; hit; /);
    assert.equal(origin.count('/max-age'), 1);
  }));

test('ETag: a stale entry is revalidated with If-None-Match; the 304 updates it and the body comes from the cache', () =>
  withProxy({}, async (origin, p) => {
    await viaProxy(p.port, `${origin.url}/etag`);
    const second = await viaProxy(p.port, `${origin.url}/etag`);
    assert.equal(second.status, 200);
    assert.equal(second.text, 'etag v1');
    assert.match(String(second.headers['cache-status']), /^caching-proxy; fwd=stale; fwd-status=304; ttl=0$/);
    assert.equal(second.headers['x-refreshed'], 'yes', 'headers of the 304 replace stored ones');
    assert.equal(origin.count('/etag'), 2);
    assert.equal(origin.requests[1].headers['if-none-match'], '"v1"');
    assert.equal(cacheEvents(p, 'revalidated')[0].reason, '304');
  }));

test('ETag: a 200 to the revalidation replaces the entry', () =>
  withProxy({}, async (origin, p) => {
    await viaProxy(p.port, `${origin.url}/etag`);
    origin.state['/etag'] = 'v2';
    const second = await viaProxy(p.port, `${origin.url}/etag`);
    assert.equal(second.text, 'etag v2');
    assert.equal(second.headers['cache-status'], 'caching-proxy; fwd=stale; fwd-status=200; stored');
    const third = await viaProxy(p.port, `${origin.url}/etag`);
    assert.equal(third.text, 'etag v2');
    assert.equal(origin.count('/etag'), 3);
    assert.equal(origin.requests[2].headers['if-none-match'], '"v2"');
    assert.equal(cacheEvents(p, 'revalidated')[0].reason, 'replaced');
  }));

test('Last-Modified: revalidated with If-Modified-Since', () =>
  withProxy({}, async (origin, p) => {
    await viaProxy(p.port, `${origin.url}/lm`);
    const second = await viaProxy(p.port, `${origin.url}/lm`);
    assert.equal(second.text, 'lm v1');
    assert.match(String(second.headers['cache-status']), /fwd-status=304/);
    assert.equal(origin.requests[1].headers['if-modified-since'], LAST_MODIFIED);
    assert.equal(origin.count('/lm'), 2);
  }));

test('no-store is never stored; no-cache is stored but revalidated every time', () =>
  withProxy({}, async (origin, p) => {
    const a = await viaProxy(p.port, `${origin.url}/no-store`);
    await viaProxy(p.port, `${origin.url}/no-store`);
    assert.equal(a.headers['cache-status'], 'caching-proxy; fwd=miss; detail=no-store');
    assert.equal(origin.count('/no-store'), 2);
    assert.equal(cacheEvents(p, 'not-stored')[0].reason, 'no-store');

    await viaProxy(p.port, `${origin.url}/no-cache`);
    const b = await viaProxy(p.port, `${origin.url}/no-cache`);
    const c = await viaProxy(p.port, `${origin.url}/no-cache`);
    assert.equal(b.text, 'no-cache v1');
    assert.equal(c.text, 'no-cache v1');
    assert.match(String(c.headers['cache-status']), /fwd-status=304/);
    assert.equal(origin.count('/no-cache'), 3);
    assert.equal(origin.requests.at(-1)?.headers['if-none-match'], '"v1"');
  }));

test('must-revalidate: never served stale, even when the origin is down', () =>
  withProxy({}, async (origin, p) => {
    await viaProxy(p.port, `${origin.url}/must-revalidate`);
    const again = await viaProxy(p.port, `${origin.url}/must-revalidate`);
    assert.match(String(again.headers['cache-status']), /fwd-status=304/);
    assert.equal(origin.count('/must-revalidate'), 2);
    const url = `${origin.url}/must-revalidate`;
    await origin.close();
    const offline = await viaProxy(p.port, url);
    assert.equal(offline.status, 502);
  }));

test('must-revalidate with max-age: fresh hits while fresh (the directive only forbids stale use)', () =>
  withProxy({}, async (origin, p) => {
    await viaProxy(p.port, `${origin.url}/must-revalidate-fresh`);
    const hit = await viaProxy(p.port, `${origin.url}/must-revalidate-fresh`);
    assert.match(String(hit.headers['cache-status']), /^caching-proxy; hit; ttl=\d+$/);
    const maxStale = await viaProxy(p.port, `${origin.url}/must-revalidate-fresh`, { headers: { 'cache-control': 'max-stale=600' } });
    assert.match(String(maxStale.headers['cache-status']), /; hit; /);
    assert.equal(origin.count('/must-revalidate-fresh'), 1);
  }));

test('private responses are not stored by the shared cache, but are with policy "private"', async () => {
  await withProxy({}, async (origin, p) => {
    await viaProxy(p.port, `${origin.url}/private`);
    const again = await viaProxy(p.port, `${origin.url}/private`);
    assert.equal(again.headers['cache-status'], 'caching-proxy; fwd=miss; detail=private');
    assert.equal(origin.count('/private'), 2);
  });
  await withProxy({ cache: { policy: 'private' } }, async (origin, p) => {
    await viaProxy(p.port, `${origin.url}/private`);
    const again = await viaProxy(p.port, `${origin.url}/private`);
    assert.equal(again.text, 'private body');
    assert.match(String(again.headers['cache-status']), /; hit; /);
    assert.equal(origin.count('/private'), 1);
  });
});

test('Authorization: not stored by the shared cache unless the response says public', () =>
  withProxy({}, async (origin, p) => {
    const auth = { authorization: 'Bearer alice' };
    await viaProxy(p.port, `${origin.url}/auth`, { headers: auth });
    const bob = await viaProxy(p.port, `${origin.url}/auth`, { headers: { authorization: 'Bearer bob' } });
    assert.equal(bob.text, 'for Bearer bob');
    assert.equal(origin.count('/auth'), 2);
    await viaProxy(p.port, `${origin.url}/auth-public`, { headers: auth });
    await viaProxy(p.port, `${origin.url}/auth-public`, { headers: auth });
    assert.equal(origin.count('/auth-public'), 1);
  }));

test('Vary: each Accept-Language is its own entry; Vary: * is never reused', () =>
  withProxy({}, async (origin, p) => {
    const en = await viaProxy(p.port, `${origin.url}/vary`, { headers: { 'accept-language': 'en' } });
    const fr = await viaProxy(p.port, `${origin.url}/vary`, { headers: { 'accept-language': 'fr' } });
    const en2 = await viaProxy(p.port, `${origin.url}/vary`, { headers: { 'accept-language': 'en' } });
    const fr2 = await viaProxy(p.port, `${origin.url}/vary`, { headers: { 'accept-language': 'fr' } });
    assert.equal(en.text, 'lang en');
    assert.equal(fr.text, 'lang fr');
    assert.equal(fr.headers['cache-status'], 'caching-proxy; fwd=vary-miss; stored');
    assert.equal(en2.text, 'lang en');
    assert.equal(fr2.text, 'lang fr');
    assert.equal(origin.count('/vary'), 2);
    await viaProxy(p.port, `${origin.url}/vary-star`);
    await viaProxy(p.port, `${origin.url}/vary-star`);
    assert.equal(origin.count('/vary-star'), 2);
  }));

test('Set-Cookie: a shared cache does not hand one client\'s cookie to another', () =>
  withProxy({}, async (origin, p) => {
    const first = await viaProxy(p.port, `${origin.url}/cookie`);
    assert.deepEqual(first.headers['set-cookie'], ['session=abc; HttpOnly', 'theme=dark']);
    await viaProxy(p.port, `${origin.url}/cookie`);
    assert.equal(origin.count('/cookie'), 2);
    assert.equal(cacheEvents(p, 'not-stored')[0].reason, 'set-cookie');
  }));

test('Set-Cookie under policy "private": stored, both cookies kept on hits', () =>
  withProxy({ cache: { policy: 'private' } }, async (origin, p) => {
    await viaProxy(p.port, `${origin.url}/cookie`);
    const hit = await viaProxy(p.port, `${origin.url}/cookie`);
    assert.deepEqual(hit.headers['set-cookie'], ['session=abc; HttpOnly', 'theme=dark']);
    assert.equal(origin.count('/cookie'), 1);
  }));

test('a client conditional that does not match gets the full stored response', () =>
  withProxy({}, async (origin, p) => {
    await viaProxy(p.port, `${origin.url}/max-age`);
    // /max-age has no validators: If-None-Match does not match, the full body comes back from the cache.
    const noMatch = await viaProxy(p.port, `${origin.url}/max-age`, { headers: { 'if-none-match': '"other"' } });
    assert.equal(noMatch.status, 200);
    assert.equal(origin.count('/max-age'), 1);
  }));

test('client If-None-Match / If-Modified-Since matching a fresh entry -> 304 without the origin', () =>
  withProxy({ cache: { policy: 'always', ttl: 60 } }, async (origin, p) => {
    const first = await viaProxy(p.port, `${origin.url}/etag`);
    assert.equal(first.headers.etag, '"v1"');
    const inm = await viaProxy(p.port, `${origin.url}/etag`, { headers: { 'if-none-match': '"v1"' } });
    assert.equal(inm.status, 304);
    assert.equal(inm.body.length, 0);
    assert.equal(inm.headers.etag, '"v1"');
    assert.match(String(inm.headers['cache-status']), /; hit; /);
    await viaProxy(p.port, `${origin.url}/lm`);
    const ims = await viaProxy(p.port, `${origin.url}/lm`, { headers: { 'if-modified-since': LAST_MODIFIED } });
    assert.equal(ims.status, 304);
    const older = await viaProxy(p.port, `${origin.url}/lm`, { headers: { 'if-modified-since': 'Sun, 01 Jan 2023 00:00:00 GMT' } });
    assert.equal(older.status, 200);
    assert.equal(older.text, 'lm v1');
    assert.equal(origin.count('/etag'), 1);
    assert.equal(origin.count('/lm'), 1);
  }));

test('a conditional request on a miss (a browser with its own copy) fills the cache and still gets its 304', () =>
  withProxy({}, async (origin, p) => {
    const first = await viaProxy(p.port, `${origin.url}/etag-fresh`, { headers: { 'if-none-match': '"v1"' } });
    assert.equal(first.status, 304);
    assert.equal(first.headers['cache-status'], 'caching-proxy; fwd=miss; stored');
    assert.equal(origin.requests[0].headers['if-none-match'], undefined, 'the full response was fetched');
    const plain = await viaProxy(p.port, `${origin.url}/etag-fresh`);
    assert.equal(plain.status, 200);
    assert.equal(plain.text, 'etag-fresh v1');
    assert.match(String(plain.headers['cache-status']), /; hit; /);
    const other = await viaProxy(p.port, `${origin.url}/etag-fresh`, { headers: { 'if-none-match': '"v0"' } });
    assert.equal(other.status, 200);
    assert.equal(origin.count('/etag-fresh'), 1);
    // Not storable: the client's request is answered in full rather than with a guess.
    const noStore = await viaProxy(p.port, `${origin.url}/no-store`, { headers: { 'if-none-match': '"x"' } });
    assert.equal(noStore.status, 200);
    assert.equal(noStore.text, 'no-store body');
  }));

test('client Cache-Control: no-cache and max-age=0 force revalidation of a fresh entry', () =>
  withProxy({}, async (origin, p) => {
    await viaProxy(p.port, `${origin.url}/max-age`);
    const forced = await viaProxy(p.port, `${origin.url}/max-age`, { headers: { 'cache-control': 'no-cache' } });
    assert.match(String(forced.headers['cache-status']), /^caching-proxy; fwd=request; fwd-status=200; stored$/);
    await viaProxy(p.port, `${origin.url}/max-age`, { headers: { 'cache-control': 'max-age=0' } });
    await viaProxy(p.port, `${origin.url}/max-age`, { headers: { pragma: 'no-cache' } });
    assert.equal(origin.count('/max-age'), 4);
    const plain = await viaProxy(p.port, `${origin.url}/max-age`);
    assert.match(String(plain.headers['cache-status']), /; hit; /);
    assert.equal(origin.count('/max-age'), 4);
  }));

test('only-if-cached: 504 on a miss, the stored response on a hit, the origin never asked by it', () =>
  withProxy({}, async (origin, p) => {
    const miss = await viaProxy(p.port, `${origin.url}/max-age`, { headers: { 'cache-control': 'only-if-cached' } });
    assert.equal(miss.status, 504);
    assert.match(miss.text, /not in the cache/);
    assert.equal(miss.headers['cache-status'], 'caching-proxy; detail=only-if-cached');
    assert.equal(origin.count('/max-age'), 0);
    await viaProxy(p.port, `${origin.url}/max-age`);
    const hit = await viaProxy(p.port, `${origin.url}/max-age`, { headers: { 'cache-control': 'only-if-cached' } });
    assert.equal(hit.status, 200);
    assert.equal(origin.count('/max-age'), 1);
  }));

test('stale-while-revalidate: the stale copy is served at once and refreshed in the background', () =>
  withProxy({}, async (origin, p) => {
    await viaProxy(p.port, `${origin.url}/swr`);
    origin.state['/swr'] = 'v2';
    const stale = await viaProxy(p.port, `${origin.url}/swr`);
    assert.equal(stale.text, 'swr v1');
    assert.match(String(stale.headers['cache-status']), /^caching-proxy; hit; ttl=-?\d+; detail=stale-while-revalidate$/);
    await waitFor(() => cacheEvents(p, 'revalidated').length === 1, 'background revalidation');
    assert.equal(origin.count('/swr'), 2);
    const fresh = await viaProxy(p.port, `${origin.url}/swr`);
    assert.equal(fresh.text, 'swr v2');
    assert.equal(cacheEvents(p, 'served-stale').length >= 1, true);
  }));

test('stale-if-error: an origin 500 or an unreachable origin gets the stale copy', () =>
  withProxy({ cache: { serveStaleIfOffline: false } }, async (origin, p) => {
    await viaProxy(p.port, `${origin.url}/sie`);
    origin.state['/sie#status'] = 500;
    const r = await viaProxy(p.port, `${origin.url}/sie`);
    assert.equal(r.status, 200);
    assert.equal(r.text, 'sie v1');
    assert.match(String(r.headers['cache-status']), /fwd=stale; fwd-status=500; ttl=-?\d+; detail=stale-if-error/);
    await viaProxy(p.port, `${origin.url}/stale`);
    const noSie = await viaProxy(p.port, `${origin.url}/stale`);
    assert.equal(noSie.status, 200, 'without stale-if-error the origin answer is used');
    const url = origin.url;
    await origin.close();
    const down = await viaProxy(p.port, `${url}/sie`);
    assert.equal(down.text, 'sie v1');
    assert.match(String(down.headers['cache-status']), /detail=stale-if-error/);
    const noFallback = await viaProxy(p.port, `${url}/stale`);
    assert.equal(noFallback.status, 502, 'serveStaleIfOffline is off here');
  }));

test('serveStaleIfOffline: an unreachable origin gets the stale copy, marked in Cache-Status', () =>
  withProxy({}, async (origin, p) => {
    await viaProxy(p.port, `${origin.url}/stale`);
    const url = origin.url;
    await origin.close();
    const r = await viaProxy(p.port, `${url}/stale`);
    assert.equal(r.status, 200);
    assert.equal(r.text, 'stale v1');
    assert.match(String(r.headers['cache-status']), /^caching-proxy; fwd=stale; ttl=-?\d+; detail=origin-unreachable$/);
    assert.equal(r.headers.warning, undefined);
    assert.equal(cacheEvents(p, 'served-stale')[0].reason, 'origin-unreachable');
  }));

test('unsafe methods pass through and invalidate the URL and its same-origin Location / Content-Location', () =>
  withProxy({}, async (origin, p) => {
    for (const path of ['/item', '/moved', '/item-view']) await viaProxy(p.port, origin.url + path);
    const post = await viaProxy(p.port, `${origin.url}/item`, { method: 'POST', body: 'x=1' });
    assert.equal(post.text, 'changed');
    assert.equal(post.headers['cache-status'], 'caching-proxy; fwd=method');
    for (const path of ['/item', '/moved', '/item-view']) await viaProxy(p.port, origin.url + path);
    assert.equal(origin.count('/item'), 3, 'GET, POST, GET again');
    assert.equal(origin.count('/moved'), 2);
    assert.equal(origin.count('/item-view'), 2);
    const again = await viaProxy(p.port, `${origin.url}/item`);
    assert.equal(again.text, 'item v2');
    assert.equal(cacheEvents(p, 'invalidated').length, 3);
  }));

test('a failed unsafe request does not invalidate; POST responses are never stored', () =>
  withProxy({}, async (origin, p) => {
    await viaProxy(p.port, `${origin.url}/max-age`);
    origin.state['/max-age#status'] = 500;
    await viaProxy(p.port, `${origin.url}/max-age`, { method: 'DELETE' });
    delete origin.state['/max-age#status'];
    const r = await viaProxy(p.port, `${origin.url}/max-age`);
    assert.match(String(r.headers['cache-status']), /; hit; /);
    assert.equal(origin.count('/max-age'), 2);
  }));

test('responses without stated freshness live for `ttl` seconds', async () => {
  await withProxy({ cache: { ttl: 120 } }, async (origin, p) => {
    await viaProxy(p.port, `${origin.url}/heuristic`);
    const hit = await viaProxy(p.port, `${origin.url}/heuristic`);
    assert.match(String(hit.headers['cache-status']), /; hit; ttl=(119|120)$/);
    assert.equal(hit.headers['cache-control'], undefined, 'the client sees the origin headers unchanged');
    assert.equal(origin.count('/heuristic'), 1);
  });
  await withProxy({ cache: { ttl: 0 } }, async (origin, p) => {
    await viaProxy(p.port, `${origin.url}/heuristic`);
    await viaProxy(p.port, `${origin.url}/heuristic`);
    assert.equal(origin.count('/heuristic'), 2);
  });
});

test('404 is cacheable by default; a 302 without freshness is not reused', () =>
  withProxy({}, async (origin, p) => {
    await viaProxy(p.port, `${origin.url}/nothing-here`);
    const again = await viaProxy(p.port, `${origin.url}/nothing-here`);
    assert.equal(again.status, 404);
    assert.equal(origin.count('/nothing-here'), 1);
    await viaProxy(p.port, `${origin.url}/redirect`);
    await viaProxy(p.port, `${origin.url}/redirect`);
    assert.equal(origin.count('/redirect'), 2);
  }));

test('a GET carrying a body is never answered from the cache: it goes to the origin, body and all', () =>
  withProxy({}, async (origin, p) => {
    await viaProxy(p.port, `${origin.url}/max-age`);
    const r = await viaProxy(p.port, `${origin.url}/max-age`, { body: 'query-in-body' });
    assert.equal(r.headers['cache-status'], 'caching-proxy; fwd=bypass; detail=request-body');
    assert.equal(origin.count('/max-age'), 2);
    assert.equal(origin.requests[1].body.toString(), 'query-in-body');
  }));
