import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as http from 'node:http';
import { rawExchange, startOrigin, startTestProxy, viaProxy, curl, type TestOrigin, type TestProxy } from '../helpers/net';

describe('forwarding', () => {
  let origin: TestOrigin;
  let p: TestProxy;
  const sockets = new Set<number>();

  before(async () => {
    origin = await startOrigin((req, res, body) => {
      sockets.add(req.socket.remotePort ?? 0);
      const url = new URL(req.url ?? '/', 'http://x');
      if (url.pathname === '/chunked') {
        res.writeHead(200, { 'Content-Type': 'text/plain' });
        res.write('part one, ');
        setTimeout(() => res.end('part two'), 20);
        return;
      }
      if (url.pathname === '/hop') {
        res.writeHead(200, { Connection: 'X-Secret-Hop, keep-alive', 'X-Secret-Hop': 'no', 'Keep-Alive': 'timeout=5', 'X-End-To-End': 'yes' });
        res.end('ok');
        return;
      }
      if (url.pathname === '/cookies') {
        res.setHeader('Set-Cookie', ['a=1; Path=/', 'b=2; Path=/']);
        res.end('ok');
        return;
      }
      if (url.pathname === '/status/204') {
        res.writeHead(204);
        res.end();
        return;
      }
      const reply = JSON.stringify({ method: req.method, url: req.url, body: body.toString(), headers: req.headers });
      res.writeHead(200, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(reply) });
      res.end(req.method === 'HEAD' ? undefined : reply);
    });
    p = await startTestProxy({ cache: { policy: 'off' } });
  });
  after(async () => {
    await p.close();
    await origin.close();
  });

  for (const method of ['GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS']) {
    test(`${method} with a body reaches the origin unchanged`, async () => {
      const body = `payload for ${method} ✓`;
      const r = await viaProxy(p.port, `${origin.url}/echo?m=${method}`, { method, body, headers: { 'content-type': 'text/plain', 'x-custom': 'kept' } });
      assert.equal(r.status, 200);
      const seen = JSON.parse(r.text);
      assert.equal(seen.method, method);
      assert.equal(seen.url, `/echo?m=${method}`);
      assert.equal(seen.body, body);
      assert.equal(seen.headers['x-custom'], 'kept');
      assert.match(seen.headers.via, /^1\.1 caching-proxy-[0-9a-f]+$/);
    });
  }

  test('HEAD gets headers and no body', async () => {
    const r = await viaProxy(p.port, `${origin.url}/head`, { method: 'HEAD' });
    assert.equal(r.status, 200);
    assert.equal(r.body.length, 0);
    assert.ok(Number(r.headers['content-length']) > 0);
  });

  test('a 204 passes through without a body', async () => {
    const r = await viaProxy(p.port, `${origin.url}/status/204`);
    assert.equal(r.status, 204);
    assert.equal(r.body.length, 0);
  });

  test('chunked and content-length responses both arrive whole', async () => {
    const chunked = await viaProxy(p.port, `${origin.url}/chunked`);
    assert.equal(chunked.text, 'part one, part two');
    assert.equal(chunked.headers['transfer-encoding'], 'chunked');
    const sized = await viaProxy(p.port, `${origin.url}/sized`);
    assert.equal(sized.headers['content-length'], String(sized.body.length));
  });

  test('hop-by-hop headers are dropped both ways, Via is added, end-to-end headers pass', async () => {
    const r = await viaProxy(p.port, `${origin.url}/echo-hop`, {
      headers: { Connection: 'X-Client-Hop', 'X-Client-Hop': 'secret', 'Proxy-Connection': 'keep-alive', TE: 'trailers', 'Proxy-Authorization': 'Basic Zm9vOmJhcg==', 'X-Keep': '1' },
    });
    const seen = JSON.parse(r.text).headers;
    assert.equal(seen['x-client-hop'], undefined);
    assert.equal(seen['proxy-connection'], undefined);
    assert.equal(seen.te, undefined);
    assert.equal(seen['proxy-authorization'], undefined);
    assert.equal(seen['x-keep'], '1');
    const back = await viaProxy(p.port, `${origin.url}/hop`);
    assert.equal(back.headers['x-secret-hop'], undefined);
    assert.equal(back.headers['x-end-to-end'], 'yes');
    assert.match(String(back.headers.via), /caching-proxy/);
  });

  test('repeated Set-Cookie headers stay separate', async () => {
    const r = await viaProxy(p.port, `${origin.url}/cookies`);
    assert.deepEqual(r.headers['set-cookie'], ['a=1; Path=/', 'b=2; Path=/']);
  });

  test('keep-alive to the client and pooled keep-alive connections to the origin', async () => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const clientPorts = new Set<number>();
    sockets.clear();
    for (let i = 0; i < 5; i++) {
      await new Promise<void>((resolve, reject) => {
        const req = http.request({ host: '127.0.0.1', port: p.port, path: `${origin.url}/pool/${i}`, agent }, (res) => {
          clientPorts.add(res.socket.localPort ?? 0);
          res.resume();
          res.on('end', resolve);
        });
        req.on('error', reject);
        req.end();
      });
    }
    agent.destroy();
    assert.equal(clientPorts.size, 1, 'the client reused one connection to the proxy');
    assert.equal(sockets.size, 1, 'the proxy reused one connection to the origin');
  });

  test('an HTTP/1.0 client gets a complete response, delimited by close', async () => {
    const out = await rawExchange(p.port, `GET ${origin.url}/chunked HTTP/1.0\r\nHost: 127.0.0.1:${origin.port}\r\n\r\n`);
    assert.match(out, /^HTTP\/1\.1 200 OK\r\n/);
    assert.doesNotMatch(out, /Transfer-Encoding: chunked/i);
    assert.ok(out.endsWith('part one, part two'), out);
  });

  test('curl -x works, and the request reaches the origin in origin-form', async () => {
    const before = origin.requests.length;
    const r = await curl(['-x', p.url, `${origin.url}/curl?q=1`]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(JSON.parse(r.stdout).url, '/curl?q=1');
    assert.equal(origin.requests.length, before + 1);
  });

  test('the proxy emits request and response events with status, size and duration', async () => {
    p.events.length = 0;
    await viaProxy(p.port, `${origin.url}/events`);
    const started = p.events.find((e) => e.type === 'request');
    const finished = p.events.find((e) => e.type === 'response');
    assert.ok(started && started.type === 'request' && started.url === `${origin.url}/events`);
    assert.ok(finished && finished.type === 'response');
    if (finished.type !== 'response') return;
    assert.equal(finished.status, 200);
    assert.ok(finished.bytes > 0);
    assert.ok(finished.durationMs >= 0);
  });
});
