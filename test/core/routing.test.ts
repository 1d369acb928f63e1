import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as http from 'node:http';
import * as https from 'node:https';
import type { AddressInfo } from 'node:net';
import { curl, startOrigin, startTestProxy, viaProxy, type TestOrigin, type TestProxy } from '../helpers/net';
import { selfSignedCert } from '../helpers/processes';

describe('path-style addressing', () => {
  let origin: TestOrigin;
  let p: TestProxy;

  before(async () => {
    origin = await startOrigin((req, res) => {
      if (req.url === '/old') {
        res.writeHead(302, { Location: `http://127.0.0.1:${origin.port}/new` });
        res.end();
        return;
      }
      res.writeHead(200, { 'Content-Type': 'text/html' });
      res.end(`<a href="page2">rel</a><img src="/logo.png"> path=${req.url}`);
    });
    p = await startTestProxy({ cache: { policy: 'off' } });
  });
  after(async () => {
    await p.close();
    await origin.close();
  });

  test('http://proxy/host:port/path fetches http://host:port/path', async () => {
    const r = await curl([`${p.url}/127.0.0.1:${origin.port}/docs/index.html?x=1`]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /path=\/docs\/index\.html\?x=1/);
    assert.equal(origin.requests.at(-1)?.headers.host, `127.0.0.1:${origin.port}`);
  });

  test('an explicit scheme prefix works too: /http://host/path', async () => {
    const r = await curl([`${p.url}/http://127.0.0.1:${origin.port}/explicit`]);
    assert.match(r.stdout, /path=\/explicit/);
  });

  test('relative links resolve naturally under the path-style prefix', async () => {
    // page2 relative to /127.0.0.1:PORT/docs/ is /127.0.0.1:PORT/docs/page2: still path-style.
    const r = await curl([`${p.url}/127.0.0.1:${origin.port}/docs/page2`]);
    assert.match(r.stdout, /path=\/docs\/page2/);
  });

  test('a root-relative link from a path-style page is redirected onto the same site', async () => {
    const r = await curl(['-i', '-H', `Referer: ${p.url}/127.0.0.1:${origin.port}/docs/`, `${p.url}/logo.png`]);
    assert.match(r.stdout, /^HTTP\/1\.1 307 /);
    assert.match(r.stdout, new RegExp(`Location: /127\\.0\\.0\\.1:${origin.port}/logo\\.png`));
    const followed = await curl(['-L', '-H', `Referer: ${p.url}/127.0.0.1:${origin.port}/docs/`, `${p.url}/logo.png`]);
    assert.match(followed.stdout, /path=\/logo\.png/);
  });

  test("an origin's absolute redirect is rewritten to stay on the proxy", async () => {
    const r = await curl(['-i', `${p.url}/127.0.0.1:${origin.port}/old`]);
    assert.match(r.stdout, new RegExp(`Location: http://127\\.0\\.0\\.1:${p.port}/127\\.0\\.0\\.1:${origin.port}/new`));
    const followed = await curl(['-L', `${p.url}/127.0.0.1:${origin.port}/old`]);
    assert.match(followed.stdout, /path=\/new/);
  });

  test('an https site path-style: /https://host/path', async () => {
    const { key, cert } = selfSignedCert();
    const server = https.createServer({ key, cert }, (req, res) => res.end(`tls ${req.url}`));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as AddressInfo).port;
    try {
      const r = await curl([`${p.url}/https://127.0.0.1:${port}/secure`]);
      // The throwaway certificate is not trusted, and the proxy must not pretend otherwise.
      assert.match(r.stdout, /TLS verification failed: the certificate of 127\.0\.0\.1:\d+ is signed by an unknown issuer/);
    } finally {
      server.close();
    }
  });
});

describe('upstream proxy chaining', () => {
  let origin: TestOrigin;
  let first: TestProxy;
  let second: TestProxy;

  before(async () => {
    origin = await startOrigin((req, res) => res.end(`via=${req.headers.via}`));
    first = await startTestProxy({ cache: { policy: 'off' } });
    second = await startTestProxy({ upstreamProxy: first.url, cache: { policy: 'off' } });
  });
  after(async () => {
    await second.close();
    await first.close();
    await origin.close();
  });

  test('two instances chained: the request passes both, each adds its Via', async () => {
    first.events.length = 0;
    const r = await curl(['-x', second.url, `${origin.url}/chained`]);
    assert.equal(r.code, 0, r.stderr);
    const vias = r.stdout.replace('via=', '').split(', ');
    assert.equal(vias.length, 2);
    assert.ok(vias.every((v) => /^1\.1 caching-proxy-[0-9a-f]+$/.test(v)) && vias[0] !== vias[1]);
    assert.ok(first.events.some((e) => e.type === 'response' && e.url === `${origin.url}/chained`), 'the first hop saw it');
  });

  test('CONNECT through the chain', async () => {
    const { key, cert } = selfSignedCert();
    const server = https.createServer({ key, cert }, (_req, res) => res.end('tunnelled twice'));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as AddressInfo).port;
    try {
      first.events.length = 0;
      const r = await curl(['-k', '-x', second.url, `https://127.0.0.1:${port}/`]);
      assert.equal(r.stdout, 'tunnelled twice', r.stderr);
      assert.ok(first.events.some((e) => e.type === 'tunnel-open' && e.target === `127.0.0.1:${port}`));
    } finally {
      server.closeAllConnections();
      server.close();
    }
  });

  test('NO_PROXY-listed hosts bypass the upstream', async () => {
    const bypassing = await startTestProxy({ upstreamProxy: first.url, noProxy: ['localhost', '127.0.0.1'], cache: { policy: 'off' } });
    try {
      first.events.length = 0;
      const r = await viaProxy(bypassing.port, `${origin.url}/direct`);
      assert.equal(r.text.split(', ').length, 1, 'only one Via: the upstream was skipped');
      assert.equal(first.events.filter((e) => e.type === 'request').length, 0);
    } finally {
      await bypassing.close();
    }
  });

  test('an unreachable upstream proxy is named in the 502', async () => {
    const dead = await startTestProxy({ cache: { policy: 'off' } });
    const deadUrl = dead.url;
    await dead.close();
    const broken = await startTestProxy({ upstreamProxy: deadUrl, cache: { policy: 'off' } });
    try {
      const r = await viaProxy(broken.port, `${origin.url}/x`);
      assert.equal(r.status, 502);
      assert.match(r.text, /via upstream proxy 127\.0\.0\.1:\d+ refused the connection/);
    } finally {
      await broken.close();
    }
  });

  test('a loop through a chain is caught by our Via token', async () => {
    // A proxy whose upstream is itself would bounce the request forever.
    const loop = await startTestProxy({ cache: { policy: 'off' } });
    try {
      await loop.proxy.update({ ...loop.proxy.config, upstreamProxy: `http://localhost:${loop.port}` });
      const r = await new Promise<number>((resolve, reject) => {
        http.get({ host: '127.0.0.1', port: loop.port, path: `${origin.url}/loop`, headers: { host: `127.0.0.1:${origin.port}` } }, (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        }).on('error', reject);
      });
      assert.equal(r, 508);
    } finally {
      await loop.close();
    }
  });
});
