import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { WebSocket, WebSocketServer } from 'ws';
import { resolveConfig } from '../../src/core/config';
import { eventLevel, formatEvent, type ErrorEvent } from '../../src/core/events';
import { admitPathStyle, refuseLinkLocal, selfNames, type PathStyleSelf } from '../../src/core/pathStyleGuard';
import { startOrigin, startTestProxy, type TestOrigin, type TestProxy } from '../helpers/net';
import { runCli, startCliProxy } from '../helpers/processes';

interface Answer {
  status: number;
  text: string;
}

/** One request straight to the proxy (no proxy settings: what a browser does path-style), with the given head fields. */
function direct(port: number, path: string, headers: http.OutgoingHttpHeaders, method = 'GET', body?: string): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path, method, headers: { ...(body !== undefined ? { 'content-length': Buffer.byteLength(body) } : {}), ...headers }, agent: false });
    req.on('response', (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

describe('admitPathStyle: the pure admission rule', () => {
  const self: PathStyleSelf = { port: 8899, names: selfNames('127.0.0.1', '127.0.0.1', []), allowedHosts: ['dev.example', '.corp.example'] };
  const admit = (headers: http.IncomingHttpHeaders) => admitPathStyle(headers, self)?.status ?? 'ok';

  test("Host: the proxy's own names with its port, or an allowed name", () => {
    for (const host of ['127.0.0.1:8899', 'localhost:8899', 'LOCALHOST:8899', '[::1]:8899', 'dev.example', 'dev.example:8899', 'corp.example:1', 'a.b.corp.example']) {
      assert.equal(admit({ host }), 'ok', host);
    }
    for (const host of ['evil.example:8899', '127.0.0.1:80', 'localhost', 'localhost.:8899', 'xcorp.example', 'dev.example.evil', '[::2]:8899', '10.0.0.1:8899']) {
      assert.equal(admit({ host }), 421, host);
    }
  });

  test('a wildcard listen address adds the machine\'s own addresses; "*" allows any name', () => {
    const wild: PathStyleSelf = { port: 1, names: selfNames('0.0.0.0', '0.0.0.0', ['192.0.2.7', 'fe80::1']), allowedHosts: [] };
    assert.equal(admitPathStyle({ host: '192.0.2.7:1' }, wild), null);
    assert.equal(admitPathStyle({ host: '[fe80::1]:1' }, wild), null);
    assert.equal(admitPathStyle({ host: 'evil.example:1' }, wild)?.status, 421);
    assert.equal(admitPathStyle({ host: 'evil.example:1' }, { ...wild, allowedHosts: ['*'] }), null);
  });

  test('cross-site marks: Fetch Metadata first, then Origin, then Referer', () => {
    const host = '127.0.0.1:8899';
    assert.equal(admit({ host, 'sec-fetch-site': 'none' }), 'ok');
    assert.equal(admit({ host, 'sec-fetch-site': 'same-origin', origin: 'http://evil.example' }), 'ok');
    assert.equal(admit({ host, 'sec-fetch-site': 'same-site' }), 403);
    assert.equal(admit({ host, 'sec-fetch-site': 'cross-site' }), 403);
    assert.equal(admit({ host, origin: 'http://127.0.0.1:8899' }), 'ok');
    assert.equal(admit({ host, origin: 'http://127.0.0.1:8898' }), 403);
    assert.equal(admit({ host, origin: 'null' }), 403);
    assert.equal(admit({ host, referer: 'http://127.0.0.1:8899/example.com/page' }), 'ok');
    assert.equal(admit({ host, referer: 'http://localhost:8899/' }), 403);
    assert.equal(admit({ host, referer: 'not a url' }), 403);
    // Behind a TLS front the page is https://name while Host is name.
    assert.equal(admit({ host: 'dev.example', origin: 'https://dev.example' }), 'ok');
  });

  test('link-local targets, in every spelling new URL leaves them, are refused', () => {
    for (const u of ['http://169.254.169.254/latest/meta-data/', 'http://2852039166/', 'http://[fe80::1]/', 'http://[febf::1]:8080/', 'http://[::ffff:169.254.169.254]/']) {
      assert.equal(refuseLinkLocal(new URL(u))?.status, 403, u);
    }
    for (const u of ['http://169.255.0.1/', 'http://[fec0::1]/', 'http://example.com/', 'http://127.0.0.1:9/']) assert.equal(refuseLinkLocal(new URL(u)), null, u);
  });
});

describe('path-style requests that web pages send', () => {
  let origin: TestOrigin;
  let wsHttp: http.Server;
  let wsPort = 0;
  let wsUpgrades = 0;
  let p: TestProxy;
  let self = '';
  let site = '';

  before(async () => {
    origin = await startOrigin((_req, res) => res.end('secret from the intranet'));
    wsHttp = http.createServer((_req, res) => res.end());
    const wss = new WebSocketServer({ server: wsHttp });
    wss.on('connection', (socket) => {
      wsUpgrades++;
      socket.on('message', (m) => socket.send(`echo ${m.toString()}`));
    });
    await new Promise<void>((r) => wsHttp.listen(0, '127.0.0.1', r));
    wsPort = (wsHttp.address() as AddressInfo).port;
    p = await startTestProxy({ cache: { policy: 'off' } });
    self = `127.0.0.1:${p.port}`;
    site = `/127.0.0.1:${origin.port}`;
  });
  after(async () => {
    await p.close();
    await origin.close();
    await new Promise<void>((r) => wsHttp.close(() => r()));
  });

  test('DNS rebinding: a foreign Host gets 421 naming the setting, a warning, and the origin sees nothing', async () => {
    const before = origin.requests.length;
    const r = await direct(p.port, `${site}/secret`, { host: `evil.example:${p.port}`, 'sec-fetch-site': 'same-origin' });
    assert.equal(r.status, 421);
    assert.match(r.text, /Misdirected request/);
    assert.match(r.text, /--allowed-hosts evil\.example/);
    assert.match(r.text, /cachingProxy\.allowedHosts/);
    const wrongPort = await direct(p.port, `${site}/secret`, { host: `localhost:${p.port + 1}` });
    assert.equal(wrongPort.status, 421);
    assert.equal(origin.requests.length, before, 'the origin was never contacted');
    const warning = p.events.find((e): e is ErrorEvent => e.type === 'error' && e.status === 421);
    assert.ok(warning, 'an event was logged');
    assert.equal(eventLevel(warning), 'warn');
    assert.match(formatEvent(warning), new RegExp(`GET ${site}/secret 421 Misdirected request`));
  });

  test("the proxy's own names are served: 127.0.0.1, localhost, [::1]", async () => {
    for (const host of [self, `localhost:${p.port}`, `[::1]:${p.port}`]) {
      const r = await direct(p.port, `${site}/own-${host}`, { host });
      assert.equal(r.status, 200, host);
      assert.equal(r.text, 'secret from the intranet');
    }
  });

  test('Sec-Fetch-Site: cross-site and same-site are refused with 403; same-origin and none are served', async () => {
    const cases: [string, number][] = [
      ['cross-site', 403],
      ['same-site', 403],
      ['same-origin', 200],
      ['none', 200],
    ];
    for (const [value, status] of cases) {
      const path = `${site}/fetch-site-${value}`;
      const r = await direct(p.port, path, { host: self, 'sec-fetch-site': value, 'sec-fetch-mode': 'no-cors', 'sec-fetch-dest': 'image' });
      assert.equal(r.status, status, value);
      assert.equal(origin.count(`/fetch-site-${value}`), status === 200 ? 1 : 0, `origin requests for ${value}`);
      if (status === 403) assert.match(r.text, new RegExp(`Forbidden: a path-style request from another web page \\(Sec-Fetch-Site: ${value}\\)`));
    }
  });

  test('a cross-site form POST is refused before its body goes anywhere', async () => {
    const r = await direct(p.port, `${site}/transfer`, { host: self, 'sec-fetch-site': 'cross-site', origin: 'http://evil.example', 'content-type': 'application/x-www-form-urlencoded' }, 'POST', 'amount=1000');
    assert.equal(r.status, 403);
    assert.equal(origin.count('/transfer'), 0);
  });

  test('without Fetch Metadata: a foreign Origin or Referer is refused, our own is served', async () => {
    const cases: [string, http.OutgoingHttpHeaders, number][] = [
      ['origin-foreign', { origin: 'http://evil.example' }, 403],
      ['origin-null', { origin: 'null' }, 403],
      ['origin-own', { origin: `http://${self}` }, 200],
      ['referer-foreign', { referer: 'http://evil.example/page.html' }, 403],
      ['referer-own', { referer: `http://${self}${site}/page.html` }, 200],
    ];
    for (const [name, headers, status] of cases) {
      const r = await direct(p.port, `${site}/${name}`, { host: self, ...headers }, 'POST', 'x=1');
      assert.equal(r.status, status, name);
      assert.equal(origin.count(`/${name}`), status === 200 ? 1 : 0, `origin requests for ${name}`);
      if (status === 403) assert.match(r.text, /another web page \((Origin|Referer): /);
    }
  });

  test('a WebSocket upgrade with a foreign Origin is refused; the origin sees no upgrade', async () => {
    const refused = await new Promise<number>((resolve, reject) => {
      const ws = new WebSocket(`ws://127.0.0.1:${p.port}/127.0.0.1:${wsPort}/chat`, { origin: 'http://evil.example' });
      ws.on('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
      ws.on('open', () => reject(new Error('upgraded')));
      ws.on('error', reject);
    });
    assert.equal(refused, 403);
    const rebound = await new Promise<number>((resolve, reject) => {
      const ws = new WebSocket(`ws://127.0.0.1:${p.port}/127.0.0.1:${wsPort}/chat`, { headers: { host: `evil.example:${p.port}` } });
      ws.on('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
      ws.on('open', () => reject(new Error('upgraded')));
      ws.on('error', reject);
    });
    assert.equal(rebound, 421);
    assert.equal(wsUpgrades, 0);
    // The proxy's own page may open one.
    const reply = await new Promise<string>((resolve, reject) => {
      const ws = new WebSocket(`ws://127.0.0.1:${p.port}/127.0.0.1:${wsPort}/chat`, { origin: `http://${self}` });
      ws.on('open', () => ws.send('hi'));
      ws.on('message', (m) => {
        resolve(m.toString());
        ws.close();
      });
      ws.on('error', reject);
    });
    assert.equal(reply, 'echo hi');
    assert.equal(wsUpgrades, 1);
  });

  test('absolute-form requests and CONNECT are not affected (the client chose this proxy)', async () => {
    const abs = await direct(p.port, `${origin.url}/absolute`, { host: `127.0.0.1:${origin.port}`, 'sec-fetch-site': 'cross-site', origin: 'http://evil.example' });
    assert.equal(abs.status, 200);
    assert.equal(origin.count('/absolute'), 1);
    const status = await new Promise<number>((resolve, reject) => {
      const req = http.request({ host: '127.0.0.1', port: p.port, method: 'CONNECT', path: `127.0.0.1:${origin.port}`, headers: { host: 'evil.example', origin: 'http://evil.example' } });
      req.on('connect', (res, socket) => {
        socket.destroy();
        resolve(res.statusCode ?? 0);
      });
      req.on('error', reject);
      req.end();
    });
    assert.equal(status, 200);
  });

  test('a link-local target (cloud metadata) is refused path-style, without a connection attempt', async () => {
    const r = await direct(p.port, '/169.254.169.254/latest/meta-data/', { host: self, 'sec-fetch-site': 'none' });
    assert.equal(r.status, 403);
    assert.match(r.text, /169\.254\.169\.254 is a link-local address/);
  });
});

describe('allowedHosts', () => {
  let origin: TestOrigin;
  before(async () => {
    origin = await startOrigin((_req, res) => res.end('ok'));
  });
  after(() => origin.close());

  test('names and .domains listed are served; others still get 421; a live change applies', async () => {
    const p = await startTestProxy({ allowedHosts: ['proxy.dev.example', '.lan.example'], cache: { policy: 'off' } });
    try {
      const path = `/127.0.0.1:${origin.port}/x`;
      assert.equal((await direct(p.port, path, { host: 'proxy.dev.example' })).status, 200);
      assert.equal((await direct(p.port, path, { host: `box.lan.example:${p.port}` })).status, 200);
      assert.equal((await direct(p.port, path, { host: 'evil.example' })).status, 421);
      await p.proxy.update({ ...p.proxy.config, allowedHosts: ['evil.example'] });
      const port = p.proxy.address.port;
      assert.equal((await direct(port, path, { host: 'evil.example' })).status, 200);
      assert.equal((await direct(port, path, { host: 'proxy.dev.example' })).status, 421);
    } finally {
      await p.close();
    }
  });

  test('a configured listen host counts as the proxy\'s own name', async () => {
    const p = await startTestProxy({ host: '127.0.0.2', cache: { policy: 'off' } });
    try {
      const r = await new Promise<number>((resolve, reject) => {
        const req = http.get({ host: '127.0.0.2', port: p.port, path: `/127.0.0.1:${origin.port}/y`, agent: false }, (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        });
        req.on('error', reject);
      });
      assert.equal(r, 200);
    } finally {
      await p.close();
    }
  });

  test('bad entries are named precisely (config and CLI); --allowed-hosts takes a comma-separated list', async () => {
    assert.throws(() => resolveConfig({ allowedHosts: ['http://x.example', 'ok.example', 'a.example:80'] }), (err: Error) => {
      assert.match(err.message, /allowedHosts: "http:\/\/x\.example" is not a host name/);
      assert.match(err.message, /allowedHosts: "a\.example:80" is not a host name/);
      assert.doesNotMatch(err.message, /ok\.example/);
      return true;
    });
    const bad = await runCli(['--port', '0', '--memory-only', '--allowed-hosts', 'x.example/']);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /allowedHosts: "x\.example\/" is not a host name/);
    const cli = await startCliProxy(['--memory-only', '--allowed-hosts', 'one.example, .two.example']);
    try {
      const path = `/127.0.0.1:${origin.port}/cli`;
      assert.equal((await direct(cli.port, path, { host: 'one.example' })).status, 200);
      assert.equal((await direct(cli.port, path, { host: 'a.two.example' })).status, 200);
      assert.equal((await direct(cli.port, path, { host: 'three.example' })).status, 421);
    } finally {
      await cli.stop();
    }
  });
});
