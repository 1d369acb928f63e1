import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as net from 'node:net';
import type { AddressInfo } from 'node:net';
import { curl, rawExchange, startOrigin, startTestProxy, viaProxy, type TestOrigin, type TestProxy } from '../helpers/net';

describe('clear failures', () => {
  let origin: TestOrigin;
  let silent: net.Server;
  let silentPort: number;
  let p: TestProxy;

  before(async () => {
    origin = await startOrigin((_req, res) => res.end('fine'));
    // Accepts connections and never answers.
    silent = net.createServer((s) => s.on('error', () => {}));
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    silentPort = (silent.address() as AddressInfo).port;
    p = await startTestProxy({ timeoutSeconds: 0.3, maxHeaderBytes: 4096, cache: { policy: 'off' } });
  });
  after(async () => {
    await p.close();
    await origin.close();
    silent.close();
  });

  function lastError() {
    return [...p.events].reverse().find((e) => e.type === 'error');
  }

  test('400 for a relative URL that is not path-style, with advice in the body', async () => {
    const r = await curl(['-i', `${p.url}/not-a-host`]);
    assert.match(r.stdout, /^HTTP\/1\.1 400 /);
    assert.match(r.stdout, /relative URL/);
    assert.match(r.stdout, /curl -x/);
    assert.equal(lastError()?.type, 'error');
  });

  test('400 for a request line that is not HTTP', async () => {
    const out = await rawExchange(p.port, 'HELLO THERE\r\n\r\n');
    assert.match(out, /^HTTP\/1\.1 400 /);
    assert.match(out, /Bad request/);
  });

  test('502 when the origin refuses the connection', async () => {
    const closed = net.createServer();
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
    const port = (closed.address() as AddressInfo).port;
    await new Promise<void>((r) => closed.close(() => r()));
    const r = await viaProxy(p.port, `http://127.0.0.1:${port}/`);
    assert.equal(r.status, 502);
    assert.match(r.text, /refused the connection/);
    assert.equal(r.headers['content-type'], 'text/plain; charset=utf-8');
    const e = lastError();
    assert.ok(e && e.type === 'error' && e.status === 502 && e.code === 'ECONNREFUSED');
  });

  test('502 when the origin host cannot be resolved', async () => {
    const r = await viaProxy(p.port, 'http://no-such-host.invalid/');
    assert.equal(r.status, 502);
    assert.match(r.text, /could not resolve no-such-host\.invalid/);
  });

  test('504 when the origin does not answer within the timeout', async () => {
    const r = await viaProxy(p.port, `http://127.0.0.1:${silentPort}/slow`);
    assert.equal(r.status, 504);
    assert.match(r.text, /did not answer within 0\.3 s/);
  });

  test('508 for a request addressed to the proxy itself, absolute-form and path-style', async () => {
    const r = await viaProxy(p.port, `http://127.0.0.1:${p.port}/x`);
    assert.equal(r.status, 508);
    assert.match(r.text, /Loop detected/);
    const viaLocalhost = await viaProxy(p.port, `http://localhost:${p.port}/x`);
    assert.equal(viaLocalhost.status, 508);
    const pathStyle = await curl(['-i', `${p.url}/127.0.0.1:${p.port}/x`]);
    assert.match(pathStyle.stdout, /^HTTP\/1\.1 508 /);
  });

  test('431 for oversized request headers', async () => {
    const r = await curl(['-i', '-x', p.url, '-H', `X-Big: ${'a'.repeat(8000)}`, `${origin.url}/`]);
    assert.match(r.stdout, /^HTTP\/1\.1 431 /);
    assert.match(r.stdout, /exceeds 4096 bytes/);
  });

  test('after every failure the proxy still serves', async () => {
    const r = await viaProxy(p.port, `${origin.url}/still-alive`);
    assert.equal(r.status, 200);
    assert.equal(r.text, 'fine');
  });
});

describe('proxy authentication', () => {
  test('407 without credentials, 200 with them; credentials are not forwarded', async () => {
    const origin = await startOrigin((req, res) => res.end(`auth=${req.headers['proxy-authorization'] ?? 'none'}`));
    const p = await startTestProxy({ auth: { username: 'dev', password: 's3cret' }, cache: { policy: 'off' } });
    try {
      const denied = await viaProxy(p.port, `${origin.url}/`);
      assert.equal(denied.status, 407);
      assert.equal(denied.headers['proxy-authenticate'], 'Basic realm="caching-proxy"');
      const wrong = await curl(['-s', '-o', '/dev/null', '-w', '%{http_code}', '-x', p.url, '-U', 'dev:nope', `${origin.url}/`]);
      assert.equal(wrong.stdout, '407');
      const ok = await curl(['-x', p.url, '-U', 'dev:s3cret', `${origin.url}/`]);
      assert.equal(ok.stdout, 'auth=none');
      assert.equal(origin.requests.length, 1, 'only the authorised request reached the origin');
    } finally {
      await p.close();
      await origin.close();
    }
  });
});
