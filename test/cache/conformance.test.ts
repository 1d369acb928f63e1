import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as http from 'node:http';
import { defaultConfig, resolveConfig, ConfigError, type ConfigInput } from '../../src/core/config';
import { sleep, startOrigin, startTestProxy, viaProxy, type ClientResponse, type TestOrigin, type TestProxy } from '../helpers/net';
import { RawClient, rawRequest } from '../helpers/raw';
import { withOriginAndProxy } from './origin';

/**
 * RFC 9111 in the default configuration, case by case: each test scripts a real local origin,
 * sends real requests through the proxy, and checks what the client received and what reached
 * the origin.
 */

type Route = (req: http.IncomingMessage, res: http.ServerResponse) => void;

/** An origin whose answers the test scripts per path. */
async function scripted(input: ConfigInput, routes: Record<string, Route>, fn: (o: TestOrigin, p: TestProxy) => Promise<void>): Promise<void> {
  const origin = await startOrigin((req, res) => {
    const route = routes[new URL(req.url ?? '/', 'http://x').pathname];
    if (route) route(req, res);
    else send(res, 599, {});
  });
  return withOriginAndProxy(origin, input, fn);
}

function send(res: http.ServerResponse, status: number, headers: Record<string, string | string[]>, body = ''): void {
  res.writeHead(status, { 'Content-Length': Buffer.byteLength(body), ...headers });
  res.end(body);
}

const cs = (r: ClientResponse) => String(r.headers['cache-status']);
const TEN_DAYS_AGO = () => new Date(Date.now() - 10 * 86_400_000).toUTCString();

// ---------------------------------------------------------------- part 1: no invented freshness

test('default config: ttl is unset, so a response without freshness is stored but asked for again every time', async () => {
  assert.equal(defaultConfig().cache.ttl, null);
  await scripted(
    {},
    {
      '/plain': (_req, res) => send(res, 200, {}, 'plain'),
      '/gone': (_req, res) => send(res, 404, {}, 'not here'),
    },
    async (origin, p) => {
      const first = await viaProxy(p.port, `${origin.url}/plain`);
      assert.equal(cs(first), 'caching-proxy; fwd=miss; stored');
      const second = await viaProxy(p.port, `${origin.url}/plain`);
      assert.equal(second.text, 'plain');
      assert.equal(cs(second), 'caching-proxy; fwd=stale; fwd-status=200; stored');
      assert.equal(origin.count('/plain'), 2, 'no 300 s of invented freshness');
      // The package-mirror case: a 404 with no caching headers is not replayed.
      await viaProxy(p.port, `${origin.url}/gone`);
      const again = await viaProxy(p.port, `${origin.url}/gone`);
      assert.equal(again.status, 404);
      assert.equal(origin.count('/gone'), 2);
    },
  );
});

test('heuristic freshness (10% of the time since Last-Modified) only for the status codes RFC 9110 allows it for', async () => {
  const lastModified = TEN_DAYS_AGO();
  await scripted(
    {},
    {
      '/old-200': (_req, res) => send(res, 200, { 'Last-Modified': lastModified }, 'old'),
      '/old-404': (_req, res) => send(res, 404, { 'Last-Modified': lastModified }, 'old 404'),
      '/old-302': (_req, res) => send(res, 302, { 'Last-Modified': lastModified, Location: '/old-200', 'Cache-Control': 'public' }, ''),
    },
    async (origin, p) => {
      for (const path of ['/old-200', '/old-404', '/old-302']) await viaProxy(p.port, origin.url + path);
      const hit = await viaProxy(p.port, `${origin.url}/old-200`);
      // A day of freshness: 10% of ten days.
      assert.match(cs(hit), /^caching-proxy; hit; ttl=(8639\d|86400)$/);
      const hit404 = await viaProxy(p.port, `${origin.url}/old-404`);
      assert.match(cs(hit404), /^caching-proxy; hit; ttl=\d+$/);
      const redirect = await viaProxy(p.port, `${origin.url}/old-302`);
      assert.equal(redirect.status, 302);
      assert.equal(cs(redirect), 'caching-proxy; fwd=stale; fwd-status=302; stored', 'a 302 gets no heuristic lifetime, even when public');
      assert.equal(origin.count('/old-200'), 1);
      assert.equal(origin.count('/old-404'), 1);
      assert.equal(origin.count('/old-302'), 2);
    },
  );
});

test('a ttl the user sets still applies; under policy always the default lifetime stays 300 s', async () => {
  const routes = { '/plain': (_req: http.IncomingMessage, res: http.ServerResponse) => send(res, 200, {}, 'plain') };
  await scripted({ cache: { ttl: 120 } }, routes, async (origin, p) => {
    await viaProxy(p.port, `${origin.url}/plain`);
    assert.match(cs(await viaProxy(p.port, `${origin.url}/plain`)), /^caching-proxy; hit; ttl=(119|120)$/);
  });
  await scripted({ cache: { policy: 'always' } }, routes, async (origin, p) => {
    await viaProxy(p.port, `${origin.url}/plain`);
    assert.match(cs(await viaProxy(p.port, `${origin.url}/plain`)), /^caching-proxy; hit; ttl=(299|300)$/);
    assert.equal(origin.count('/plain'), 1);
  });
  assert.equal(resolveConfig({ cache: { ttl: 60 } }).cache.ttl, 60);
  assert.equal(resolveConfig({ cache: { ttl: null } }).cache.ttl, null);
  assert.equal(resolveConfig({ cache: { ttl: '' } }).cache.ttl, null);
  assert.throws(() => resolveConfig({ cache: { ttl: -1 } }), (e: unknown) => e instanceof ConfigError && /cache\.ttl: -1 is invalid/.test(e.message));
});

// ---------------------------------------------------------------- 304 without validators

test('a 304 without validators to a revalidation never reaches a client that asked unconditionally: the stored response is updated and served', async () => {
  /** Answers a conditional request with a bare 304 (no ETag, no Last-Modified), as many origins do. */
  const bare304 = (headers: Record<string, string>, body: string): Route => (req, res) => {
    if (req.headers['if-none-match'] !== undefined || req.headers['if-modified-since'] !== undefined) send(res, 304, { 'X-Updated': 'yes' });
    else send(res, 200, headers, body);
  };
  await scripted(
    {},
    {
      '/no-cache': bare304({ ETag: '"a"', 'Cache-Control': 'no-cache' }, 'no-cache body'),
      '/must-revalidate': bare304({ ETag: '"b"', 'Cache-Control': 'max-age=0, must-revalidate' }, 'must-revalidate body'),
      '/fresh': bare304({ ETag: '"c"', 'Cache-Control': 'max-age=60' }, 'fresh body'),
      '/vary': bare304({ ETag: '"d"', 'Cache-Control': 'max-age=0', Vary: 'Accept-Language' }, 'vary body'),
      '/lm': bare304({ 'Last-Modified': TEN_DAYS_AGO(), 'Cache-Control': 'max-age=0' }, 'lm body'),
    },
    async (origin, p) => {
      const cases: Array<[string, http.OutgoingHttpHeaders, string, RegExp]> = [
        ['/no-cache', {}, 'no-cache body', /^caching-proxy; fwd=stale; fwd-status=304; ttl=0$/],
        ['/must-revalidate', {}, 'must-revalidate body', /^caching-proxy; fwd=stale; fwd-status=304; ttl=0$/],
        ['/fresh', { 'cache-control': 'no-cache' }, 'fresh body', /^caching-proxy; fwd=request; fwd-status=304; ttl=(59|60)$/],
        ['/vary', { 'accept-language': 'de' }, 'vary body', /^caching-proxy; fwd=stale; fwd-status=304; ttl=0$/],
        ['/lm', {}, 'lm body', /^caching-proxy; fwd=stale; fwd-status=304; ttl=0$/],
      ];
      for (const [path, headers, body, status] of cases) {
        await viaProxy(p.port, origin.url + path, { headers: path === '/vary' ? headers : {} });
        const r = await viaProxy(p.port, origin.url + path, { headers });
        assert.equal(r.status, 200, path);
        assert.equal(r.text, body, path);
        assert.equal(r.headers['x-updated'], 'yes', `${path}: the 304's fields update the stored response`);
        assert.match(cs(r), status, path);
        const revalidation = origin.requests.filter((q) => q.url === path)[1];
        assert.ok(revalidation.headers['if-none-match'] !== undefined || revalidation.headers['if-modified-since'] !== undefined, `${path}: the cache asked conditionally`);
      }
    },
  );
});

test('a 304 naming another representation, to an unconditional client: the client gets the full response, fetched again without validators', async () => {
  await scripted(
    {},
    {
      '/other': (req, res) => {
        if (req.headers['if-none-match'] !== undefined) send(res, 304, { ETag: '"someone-else"' });
        else send(res, 200, { ETag: '"ours"', 'Cache-Control': 'max-age=0' }, 'full body');
      },
    },
    async (origin, p) => {
      await viaProxy(p.port, `${origin.url}/other`);
      const r = await viaProxy(p.port, `${origin.url}/other`);
      assert.equal(r.status, 200);
      assert.equal(r.text, 'full body');
      assert.equal(cs(r), 'caching-proxy; fwd=stale; fwd-status=200; stored');
      const [, conditional, plain] = origin.requests;
      assert.equal(conditional.headers['if-none-match'], '"ours"');
      assert.equal(plain.headers['if-none-match'], undefined);
    },
  );
});

// ---------------------------------------------------------------- Expires, Age, directive case

test('an invalid Expires counts as already expired; the three HTTP-date forms give freshness', async () => {
  const future = new Date(Date.UTC(new Date().getUTCFullYear() + 1, 11, 1, 9, 5, 7));
  const imf = future.toUTCString(); // e.g. "Wed, 01 Dec 2027 09:05:07 GMT"
  const [wkd, dd, mon, yyyy, time] = imf.replace(',', '').split(' ');
  const weekday = ['Sunday', 'Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday', 'Saturday'][future.getUTCDay()];
  const valid = {
    imf,
    rfc850: `${weekday}, ${dd}-${mon}-${yyyy.slice(2)} ${time} GMT`,
    asctime: `${wkd} ${mon} ${String(Number(dd)).padStart(2, ' ')} ${time} ${yyyy}`,
  };
  const invalid = {
    utc: imf.replace('GMT', 'UTC'),
    'no-comma': imf.replace(',', ''),
    'double-space': imf.replace(', ', ',  '),
    dashes: `${wkd}, ${dd}-${mon}-${yyyy} ${time} GMT`,
    'one-digit-hour': imf.replace(' 09:', ' 9:'),
  };
  const all: Record<string, string> = { ...valid, ...invalid };
  const routes: Record<string, Route> = {};
  for (const [name, expires] of Object.entries(all)) routes[`/${name}`] = (_req, res) => send(res, 200, { Expires: expires }, name);
  await scripted({}, routes, async (origin, p) => {
    for (const name of Object.keys(all)) {
      await viaProxy(p.port, `${origin.url}/${name}`);
      const r = await viaProxy(p.port, `${origin.url}/${name}`);
      assert.equal(r.text, name);
      if (name in valid) {
        assert.match(cs(r), /^caching-proxy; hit; ttl=\d+$/, `${name}: ${all[name]}`);
        assert.equal(origin.count(`/${name}`), 1, name);
      } else {
        assert.equal(cs(r), 'caching-proxy; fwd=stale; fwd-status=200; stored', `${name}: ${all[name]}`);
        assert.equal(origin.count(`/${name}`), 2, `${name}: "${all[name]}" is not an HTTP-date`);
      }
    }
  });
});

test('an Age that is not a non-negative integer is ignored; of a list, the first member counts', () =>
  scripted(
    {},
    {
      '/fractional': (_req, res) => send(res, 200, { 'Cache-Control': 'max-age=2', Age: '2.5' }, 'fractional'),
      '/list': (_req, res) => send(res, 200, { 'Cache-Control': 'max-age=60', Age: '5, 50' }, 'list'),
    },
    async (origin, p) => {
      await viaProxy(p.port, `${origin.url}/fractional`);
      const r = await viaProxy(p.port, `${origin.url}/fractional`);
      assert.match(cs(r), /^caching-proxy; hit; ttl=[12]$/, 'still fresh');
      assert.equal(r.headers.age, '0');
      assert.equal(origin.count('/fractional'), 1);
      await viaProxy(p.port, `${origin.url}/list`);
      const l = await viaProxy(p.port, `${origin.url}/list`);
      assert.match(cs(l), /^caching-proxy; hit; ttl=(54|55)$/);
      assert.match(String(l.headers.age), /^[56]$/);
    },
  ));

test('cache directives are case-insensitive, in responses and in requests', () =>
  scripted(
    {},
    {
      '/upper-max-age': (_req, res) => send(res, 200, { 'Cache-Control': 'Max-Age=60' }, 'max-age'),
      '/upper-no-store': (_req, res) => send(res, 200, { 'Cache-Control': 'NO-STORE' }, 'no-store'),
      '/upper-private': (_req, res) => send(res, 200, { 'Cache-Control': 'PRIVATE, MAX-AGE=60' }, 'private'),
      '/upper-no-cache': (req, res) => {
        if (req.headers['if-none-match'] === '"n"') send(res, 304, { ETag: '"n"' });
        else send(res, 200, { 'Cache-Control': 'NO-CACHE', ETag: '"n"' }, 'no-cache');
      },
    },
    async (origin, p) => {
      for (const path of ['/upper-max-age', '/upper-no-store', '/upper-private', '/upper-no-cache']) await viaProxy(p.port, origin.url + path);
      assert.match(cs(await viaProxy(p.port, `${origin.url}/upper-max-age`)), /^caching-proxy; hit; ttl=(59|60)$/);
      assert.equal(cs(await viaProxy(p.port, `${origin.url}/upper-no-store`)), 'caching-proxy; fwd=miss; detail=no-store');
      assert.equal(cs(await viaProxy(p.port, `${origin.url}/upper-private`)), 'caching-proxy; fwd=miss; detail=private');
      assert.equal(cs(await viaProxy(p.port, `${origin.url}/upper-no-cache`)), 'caching-proxy; fwd=stale; fwd-status=304; ttl=0');
      // Request directives: a reload in capitals still revalidates.
      const reload = await viaProxy(p.port, `${origin.url}/upper-max-age`, { headers: { 'cache-control': 'NO-CACHE' } });
      assert.equal(cs(reload), 'caching-proxy; fwd=request; fwd-status=200; stored');
      const onlyIfCached = await viaProxy(p.port, `${origin.url}/never-fetched`, { headers: { 'cache-control': 'Only-If-Cached' } });
      assert.equal(onlyIfCached.status, 504);
      assert.deepEqual(
        ['/upper-max-age', '/upper-no-store', '/upper-private', '/upper-no-cache', '/never-fetched'].map((path) => origin.count(path)),
        [2, 2, 2, 2, 0],
      );
    },
  ));

// ---------------------------------------------------------------- stale when the origin is unreachable

test('origin unreachable: no stale answer where no-cache, must-revalidate, proxy-revalidate or s-maxage forbids it; other stale entries are served, marked', async () => {
  const routes: Record<string, Route> = {
    '/no-cache': (_req, res) => send(res, 200, { 'Cache-Control': 'no-cache' }, 'no-cache'),
    '/must-revalidate': (_req, res) => send(res, 200, { 'Cache-Control': 'max-age=0, must-revalidate' }, 'must-revalidate'),
    '/proxy-revalidate': (_req, res) => send(res, 200, { 'Cache-Control': 'max-age=0, proxy-revalidate' }, 'proxy-revalidate'),
    '/s-maxage': (_req, res) => send(res, 200, { 'Cache-Control': 's-maxage=0, max-age=60' }, 's-maxage'),
    '/plain-stale': (_req, res) => send(res, 200, { 'Cache-Control': 'max-age=0' }, 'plain-stale'),
  };
  const forbidden = ['/no-cache', '/must-revalidate', '/proxy-revalidate', '/s-maxage'];
  const origin = await startOrigin((req, res) => routes[req.url ?? '']!(req, res));
  const p = await startTestProxy({});
  try {
    for (const path of Object.keys(routes)) assert.equal(cs(await viaProxy(p.port, origin.url + path)), 'caching-proxy; fwd=miss; stored', path);
    const url = origin.url;
    await origin.close();
    for (const path of forbidden) {
      const r = await viaProxy(p.port, url + path);
      assert.equal(r.status, 502, `${path}: ${r.text}`);
      assert.doesNotMatch(r.text, new RegExp(`^${path.slice(1)}$`));
      assert.equal(cs(r), 'caching-proxy; fwd=stale');
    }
    const allowed = await viaProxy(p.port, `${url}/plain-stale`);
    assert.equal(allowed.text, 'plain-stale');
    assert.match(cs(allowed), /^caching-proxy; fwd=stale; ttl=-?\d+; detail=origin-unreachable$/);

    // policy offline is the user's explicit choice: everything stored is served.
    await p.proxy.update({ ...p.proxy.config, cache: { ...p.proxy.config.cache, policy: 'offline' } });
    for (const path of forbidden) {
      const r = await viaProxy(p.port, url + path);
      assert.equal(r.text, path.slice(1), path);
      assert.match(cs(r), /^caching-proxy; hit; ttl=-?\d+; detail=offline$/, path);
    }
  } finally {
    await p.close();
    await origin.close();
  }
});

// ---------------------------------------------------------------- unsafe methods

test('every method not known as safe invalidates the URL and its same-origin Location / Content-Location; safe ones do not', () =>
  scripted(
    {},
    {
      '/doc': (req, res) => {
        if (req.method === 'GET') send(res, 200, { 'Cache-Control': 'max-age=60' }, 'doc');
        else send(res, 200, { Location: '/doc-moved', 'Content-Location': '/doc-view' }, `${req.method} done`);
      },
      '/doc-moved': (_req, res) => send(res, 200, { 'Cache-Control': 'max-age=60' }, 'moved'),
      '/doc-view': (_req, res) => send(res, 200, { 'Cache-Control': 'max-age=60' }, 'view'),
    },
    async (origin, p) => {
      const paths = ['/doc', '/doc-moved', '/doc-view'];
      let expected = 1;
      for (const path of paths) await viaProxy(p.port, origin.url + path);
      for (const method of ['MKCOL', 'PURGE', 'LINK', 'UNLINK', 'PROPPATCH', 'LOCK', 'COPY', 'MOVE']) {
        const r = await viaProxy(p.port, `${origin.url}/doc`, { method });
        assert.equal(r.text, `${method} done`);
        assert.equal(cs(r), 'caching-proxy; fwd=method');
        for (const path of paths) {
          const again = await viaProxy(p.port, origin.url + path);
          assert.equal(cs(again), 'caching-proxy; fwd=miss; stored', `${method} invalidates ${path}`);
        }
        expected++;
        assert.equal(origin.requests.filter((q) => q.method === 'GET' && q.url === '/doc-view').length, expected);
      }
      for (const method of ['OPTIONS', 'PROPFIND']) {
        await viaProxy(p.port, `${origin.url}/doc`, { method });
        assert.match(cs(await viaProxy(p.port, `${origin.url}/doc`)), /^caching-proxy; hit; /, `${method} is safe`);
      }
    },
  ));

// ---------------------------------------------------------------- Date and Age on hits

test("a hit keeps the origin's Date; Age says how long it has been in the cache", () => {
  const originDate = new Date(Date.now() - 30_000).toUTCString();
  return scripted(
    {},
    { '/dated': (_req, res) => send(res, 200, { 'Cache-Control': 'max-age=600', Date: originDate }, 'dated') },
    async (origin, p) => {
      const miss = await viaProxy(p.port, `${origin.url}/dated`);
      assert.equal(miss.headers.date, originDate);
      // The ordinary path (Connection: close is not the quick path's) ...
      const hit = await viaProxy(p.port, `${origin.url}/dated`);
      assert.match(cs(hit), /; hit; /);
      assert.equal(hit.headers.date, originDate);
      assert.match(String(hit.headers.age), /^[01]$/);
      // ... the same with a repeated field the quick reader declines but the handler's fast path takes ...
      const dup = await viaProxy(p.port, `${origin.url}/dated`, { headers: { 'x-repeated': ['a', 'b'] } });
      assert.equal(dup.headers.date, originDate);
      assert.match(cs(dup), /; hit; /);
      // ... a range answered from the entry ...
      const part = await viaProxy(p.port, `${origin.url}/dated`, { headers: { range: 'bytes=0-1' } });
      assert.equal(part.status, 206);
      assert.equal(part.headers.date, originDate);
      // ... and the quick path, on a kept-alive connection.
      const client = await RawClient.connect(p.port);
      try {
        client.send(rawRequest(`${origin.url}/dated`));
        const quick = await client.response();
        assert.match(quick.headers['cache-status'], /; hit; /);
        assert.equal(quick.headers.date, originDate);
        assert.match(quick.headers.age, /^[01]$/);
        assert.equal(Object.keys(quick.headers).filter((h) => h === 'date').length, 1);
      } finally {
        client.close();
      }
      assert.equal(origin.count('/dated'), 1);
    },
  );
});

test('a response without Date is stored with the time it was received, and hits carry that Date', () =>
  scripted(
    {},
    {
      '/undated': (_req, res) => {
        res.sendDate = false;
        send(res, 200, { 'Cache-Control': 'max-age=600' }, 'undated');
      },
    },
    async (origin, p) => {
      const before = Math.floor(Date.now() / 1000) * 1000;
      await viaProxy(p.port, `${origin.url}/undated`);
      const after = Date.now();
      // Into the next second, so a Date made at the hit would differ from the stored one.
      await sleep(1100);
      const hit = await viaProxy(p.port, `${origin.url}/undated`);
      assert.match(cs(hit), /; hit; /);
      const date = Date.parse(String(hit.headers.date));
      assert.ok(date >= before && date <= after, `${String(hit.headers.date)}: the time the response was received`);
      assert.match(String(hit.headers.age), /^[12]$/);
    },
  ));

// ---------------------------------------------------------------- interim responses

/** A GET through the proxy that records the interim (1xx) responses before the final one. */
function getWithInterim(proxyPort: number, target: string): Promise<{ interim: Array<{ status: number; headers: http.IncomingHttpHeaders }>; final: ClientResponse }> {
  return new Promise((resolve, reject) => {
    const interim: Array<{ status: number; headers: http.IncomingHttpHeaders }> = [];
    const req = http.request({ host: '127.0.0.1', port: proxyPort, path: target, headers: { host: new URL(target).host }, agent: false });
    req.on('information', (info) => interim.push({ status: info.statusCode, headers: info.headers }));
    req.on('response', (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const body = Buffer.concat(chunks);
        resolve({ interim, final: { status: res.statusCode ?? 0, headers: res.headers, body, text: body.toString() } });
      });
    });
    req.on('error', reject);
    req.end();
  });
}

test('interim responses (100, 102, 103 Early Hints) reach the client as they arrive and are never stored; the final response is', () =>
  scripted(
    {},
    {
      '/hinted': (_req, res) => {
        res.writeContinue();
        res.writeProcessing();
        res.writeEarlyHints({ link: '</style.css>; rel=preload; as=style' });
        setTimeout(() => send(res, 200, { 'Cache-Control': 'max-age=60' }, 'final body'), 20);
      },
    },
    async (origin, p) => {
      const first = await getWithInterim(p.port, `${origin.url}/hinted`);
      assert.deepEqual(first.interim.map((i) => i.status), [100, 102, 103]);
      assert.equal(first.interim[2].headers.link, '</style.css>; rel=preload; as=style');
      assert.equal(first.final.status, 200);
      assert.equal(first.final.text, 'final body');
      assert.equal(cs(first.final), 'caching-proxy; fwd=miss; stored');
      const second = await getWithInterim(p.port, `${origin.url}/hinted`);
      assert.deepEqual(second.interim, [], 'a hit has no interim responses');
      assert.equal(second.final.status, 200);
      assert.equal(second.final.text, 'final body');
      assert.match(cs(second.final), /^caching-proxy; hit; ttl=\d+$/);
      assert.equal(origin.count('/hinted'), 1);
    },
  ));

// ---------------------------------------------------------------- status codes

test('any status code the cache understands is stored with explicit freshness; without it, only the heuristically cacheable ones', () =>
  scripted(
    {},
    {
      '/400': (_req, res) => send(res, 400, { 'Cache-Control': 'max-age=60' }, 'bad request'),
      '/500': (_req, res) => send(res, 500, { 'Cache-Control': 'max-age=60' }, 'server error'),
      '/503': (_req, res) => send(res, 503, { Expires: new Date(Date.now() + 60_000).toUTCString() }, 'unavailable'),
      '/500-plain': (_req, res) => send(res, 500, { 'Last-Modified': TEN_DAYS_AGO() }, 'plain error'),
    },
    async (origin, p) => {
      for (const [path, status, body] of [['/400', 400, 'bad request'], ['/500', 500, 'server error'], ['/503', 503, 'unavailable']] as const) {
        assert.equal(cs(await viaProxy(p.port, origin.url + path)), 'caching-proxy; fwd=miss; stored', path);
        const hit = await viaProxy(p.port, origin.url + path);
        assert.equal(hit.status, status);
        assert.equal(hit.text, body);
        assert.match(cs(hit), /^caching-proxy; hit; ttl=(59|60)$/, path);
        assert.equal(origin.count(path), 1, path);
      }
      assert.equal(cs(await viaProxy(p.port, `${origin.url}/500-plain`)), 'caching-proxy; fwd=miss; detail=status-500');
      await viaProxy(p.port, `${origin.url}/500-plain`);
      assert.equal(origin.count('/500-plain'), 2);
    },
  ));

// ---------------------------------------------------------------- Vary (optional item: normalised fields)

test('Vary on Accept-Encoding / Accept-Language: the same preference spelled differently is the same variant', () =>
  scripted(
    {},
    {
      '/enc': (req, res) => send(res, 200, { 'Cache-Control': 'max-age=60', Vary: 'Accept-Encoding' }, `enc ${req.headers['accept-encoding']}`),
      '/lang': (req, res) => send(res, 200, { 'Cache-Control': 'max-age=60', Vary: 'Accept-Language' }, `lang ${req.headers['accept-language']}`),
      '/enc-etag': (req, res) => {
        if (req.headers['if-none-match'] === '"e"') send(res, 304, { ETag: '"e"' });
        else send(res, 200, { 'Cache-Control': 'max-age=0', Vary: 'Accept-Encoding', ETag: '"e"' }, 'enc-etag');
      },
    },
    async (origin, p) => {
      const get = (path: string, name: string, value: string) => viaProxy(p.port, origin.url + path, { headers: { [name]: value } });
      assert.equal(cs(await get('/enc', 'accept-encoding', 'gzip, br')), 'caching-proxy; fwd=miss; stored');
      for (const same of ['br,gzip', 'GZIP;q=1.0, br', 'gzip, br, zstd;q=0']) {
        const r = await get('/enc', 'accept-encoding', same);
        assert.match(cs(r), /^caching-proxy; hit; /, same);
        assert.equal(r.text, 'enc gzip, br');
      }
      assert.equal(cs(await get('/enc', 'accept-encoding', 'gzip')), 'caching-proxy; fwd=vary-miss; stored');
      assert.equal(origin.count('/enc'), 2);

      await get('/lang', 'accept-language', 'en-US, en;q=0.9');
      assert.match(cs(await get('/lang', 'accept-language', 'en-us,en;q=0.9')), /^caching-proxy; hit; /);
      assert.equal(cs(await get('/lang', 'accept-language', 'de')), 'caching-proxy; fwd=vary-miss; stored');
      assert.equal(origin.count('/lang'), 2);

      // A variant matched by the normalised value is still revalidated with its validator.
      await get('/enc-etag', 'accept-encoding', 'gzip, br');
      const r = await get('/enc-etag', 'accept-encoding', 'br, GZIP');
      assert.equal(cs(r), 'caching-proxy; fwd=stale; fwd-status=304; ttl=0');
      assert.equal(origin.requests.filter((q) => q.url === '/enc-etag')[1].headers['if-none-match'], '"e"');
    },
  ));
