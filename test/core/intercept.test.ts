import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, statSync } from 'node:fs';
import * as https from 'node:https';
import * as os from 'node:os';
import * as path from 'node:path';
// The module object itself (not an import namespace), so that a test can wrap one of its functions.
import tls = require('node:tls');
import { WebSocket, WebSocketServer } from 'ws';
import { resolveConfig } from '../../src/core/config';
import { MAX_LEAF_CONTEXTS } from '../../src/core/tls/leaves';
import { curl, startTestProxy, waitFor, type TestProxy } from '../helpers/net';
import { certificateThroughProxy, ConnectAgent, connectTunnel, startHttpsOrigin, TestCa, tlsThroughProxy, type TestHttpsOrigin } from '../helpers/tls';

function get(agent: https.Agent, url: string, ca: string): Promise<{ status: number; headers: Record<string, unknown>; text: string }> {
  return new Promise((resolve, reject) => {
    https
      .get(url, { agent, ca }, (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (text += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, text }));
      })
      .on('error', reject);
  });
}

describe('HTTPS interception', () => {
  const testCa = new TestCa();
  const otherCa = new TestCa('Someone Else CA');
  let origin: TestHttpsOrigin;
  let expired: TestHttpsOrigin;
  let wrongHost: TestHttpsOrigin;
  let unknownIssuer: TestHttpsOrigin;
  let p: TestProxy;
  let caDir: string;
  let ourCa: string;

  before(async () => {
    origin = await startHttpsOrigin(testCa.leaf('DNS:localhost,IP:127.0.0.1'), (req, res) => {
      res.writeHead(200, { 'cache-control': 'max-age=300', 'content-type': 'text/plain' });
      res.end(`secure ${req.url}`);
    });
    new WebSocketServer({ server: origin.server }).on('connection', (ws, req) => ws.on('message', (m) => ws.send(`echo ${req.url} ${m.toString()}`)));
    expired = await startHttpsOrigin(testCa.leaf('DNS:localhost,IP:127.0.0.1', -1), (_req, res) => res.end('expired origin'));
    wrongHost = await startHttpsOrigin(testCa.leaf('DNS:other.example'), (_req, res) => res.end('wrong origin'));
    unknownIssuer = await startHttpsOrigin(otherCa.leaf('DNS:localhost'), (_req, res) => res.end('unknown origin'));
    caDir = path.join(mkdtempSync(path.join(os.tmpdir(), 'cp-intercept-')), 'ca');
    const umask = process.umask(0);
    try {
      p = await startTestProxy({ https: { intercept: ['localhost'], caDir, upstreamCa: testCa.certPath } });
    } finally {
      process.umask(umask);
    }
    ourCa = readFileSync(path.join(caDir, 'ca.pem'), 'utf8');
  });
  after(async () => {
    await p.close();
    await Promise.all([origin.close(), expired.close(), wrongHost.close(), unknownIssuer.close()]);
  });

  test('the CA is made on first use: folder 0700, key 0600 (even under umask 000), a bundle of system roots plus ours', () => {
    assert.equal(statSync(caDir).mode & 0o777, 0o700);
    assert.equal(statSync(path.join(caDir, 'ca-key.pem')).mode & 0o777, 0o600);
    const ca = new X509Certificate(ourCa);
    assert.ok(ca.ca, 'ca.pem is a CA certificate');
    const bundle = readFileSync(path.join(caDir, 'ca-bundle.pem'), 'utf8');
    assert.ok(bundle.includes(ourCa.trim()), 'the bundle holds our CA');
    const certificates = bundle.match(/-----BEGIN CERTIFICATE-----/g)?.length ?? 0;
    assert.ok(certificates > 100, `the bundle holds the system roots too (${certificates} certificates)`);
  });

  test('curl with --cacert our CA: an intercepted response is stored, then served from the cache', async () => {
    p.events.length = 0;
    const url = `https://localhost:${origin.port}/curl`;
    const first = await curl(['-i', '--cacert', path.join(caDir, 'ca.pem'), '-x', p.url, url]);
    assert.equal(first.code, 0, first.stderr);
    assert.match(first.stdout, /Cache-Status: caching-proxy; fwd=miss; stored/i);
    assert.match(first.stdout, /secure \/curl$/);
    const second = await curl(['-i', '--cacert', path.join(caDir, 'ca.pem'), '-x', p.url, url]);
    assert.match(second.stdout, /Cache-Status: caching-proxy; hit/i);
    assert.match(second.stdout, /secure \/curl$/);
    assert.equal(origin.count('/curl'), 1, 'the origin was asked once');
    assert.ok(p.events.some((e) => e.type === 'tunnel-open' && e.intercepted && e.target === `localhost:${origin.port}`));
    assert.ok(p.events.some((e) => e.type === 'request' && e.url === url), 'the request event carries the https:// URL');
    assert.ok((await p.proxy.cache.list()).some((entry) => entry.url === url), 'the entry is in the cache listing (the tree)');
  });

  test('--upstream-ca: new origin connections reuse one TLS context (the roots are not parsed again per connection)', async () => {
    // An origin that closes every connection: each request through the proxy is a new upstream TLS connection.
    const closing = await startHttpsOrigin(testCa.leaf('DNS:localhost,IP:127.0.0.1'), (req, res) => {
      res.writeHead(200, { 'cache-control': 'no-store', connection: 'close' });
      res.end(`closing ${req.url}`);
    });
    const testCaPem = readFileSync(testCa.certPath, 'utf8');
    const original = tls.createSecureContext;
    let upstreamContexts = 0;
    tls.createSecureContext = (options) => {
      const ca = options?.ca;
      if (Array.isArray(ca) && ca.some((c) => String(c).includes(testCaPem.trim().split('\n')[1]))) upstreamContexts++;
      return original(options);
    };
    try {
      for (let i = 0; i < 3; i++) {
        const r = await curl(['-s', '--cacert', path.join(caDir, 'ca.pem'), '-x', p.url, `https://localhost:${closing.port}/c${i}`]);
        assert.equal(r.stdout, `closing /c${i}`, r.stderr);
      }
    } finally {
      tls.createSecureContext = original;
      await closing.close();
    }
    assert.equal(closing.requests.length, 3);
    assert.equal(upstreamContexts, 0, 'no TLS context with the upstream CA list was made per connection');
  });

  test("Node's https with our CA as `ca`, over kept-alive TLS; ALPN gives http/1.1", async () => {
    const agent = new ConnectAgent(p.port, {});
    try {
      const a = await get(agent, `https://localhost:${origin.port}/node`, ourCa);
      assert.equal(a.status, 200);
      assert.equal(a.text, 'secure /node');
      const b = await get(agent, `https://localhost:${origin.port}/node`, ourCa);
      assert.match(String(b.headers['cache-status']), /hit/);
    } finally {
      agent.destroy();
    }
    const socket = await tlsThroughProxy(p.port, `localhost:${origin.port}`, { ca: ourCa, servername: 'localhost', ALPNProtocols: ['h2', 'http/1.1'] });
    assert.equal(socket.alpnProtocol, 'http/1.1');
    socket.destroy();
  });

  test('leaf certificates: SAN of the name, signed by our CA, short validity; an IP SAN for an address', async () => {
    const leaf = new X509Certificate(await certificateThroughProxy(p.port, 'localhost', origin.port));
    assert.equal(leaf.subjectAltName, 'DNS:localhost');
    assert.ok(leaf.checkIssued(new X509Certificate(ourCa)) && leaf.verify(new X509Certificate(ourCa).publicKey), 'signed by our CA');
    const days = (Date.parse(leaf.validTo) - Date.now()) / 86_400_000;
    assert.ok(days > 1 && days <= 8, `valid for about a week (${days.toFixed(1)} days)`);
    assert.equal(leaf.ca, false);

    await p.proxy.update(resolveConfig({ ...p.proxy.config, https: { ...p.proxy.config.https, intercept: ['localhost', '127.0.0.1'] } }));
    const ipLeaf = new X509Certificate(await certificateThroughProxy(p.port, '127.0.0.1', origin.port));
    assert.equal(ipLeaf.subjectAltName, 'IP Address:127.0.0.1');
    const r = await curl(['--cacert', path.join(caDir, 'ca.pem'), '-x', p.url, `https://127.0.0.1:${origin.port}/ip`]);
    assert.equal(r.stdout, 'secure /ip', r.stderr);
  });

  test('--tunnel wins over --intercept: a tunnelled host shows the origin\'s own certificate', async () => {
    await p.proxy.update(resolveConfig({ ...p.proxy.config, https: { ...p.proxy.config.https, intercept: ['*'], tunnel: ['127.0.0.1'] } }));
    const tunnelled = new X509Certificate(await certificateThroughProxy(p.port, '127.0.0.1', origin.port));
    assert.match(tunnelled.issuer, /Caching Proxy Test Origin CA/);
    const intercepted = new X509Certificate(await certificateThroughProxy(p.port, 'localhost', origin.port));
    assert.equal(intercepted.issuer, new X509Certificate(ourCa).subject);
    await p.proxy.update(resolveConfig({ ...p.proxy.config, https: { ...p.proxy.config.https, intercept: ['localhost'], tunnel: [] } }));
  });

  for (const [name, pick, cause] of [
    ['expired', () => expired, /expired/],
    ['wrong-host', () => wrongHost, /wrong host/],
    ['unknown-issuer', () => unknownIssuer, /unknown issuer/],
  ] as const) {
    test(`an origin with a ${name} certificate: 502 whose body names the cause, and an error event`, async () => {
      p.events.length = 0;
      const port = pick().port;
      const r = await curl(['-i', '--cacert', path.join(caDir, 'ca.pem'), '-x', p.url, `https://localhost:${port}/x`]);
      assert.match(r.stdout, /^HTTP\/1\.1 502/m);
      assert.match(r.stdout, cause);
      assert.match(r.stdout, /TLS verification failed/);
      assert.equal(pick().requests.length, 0, 'nothing reached the origin');
      assert.ok(p.events.some((e) => e.type === 'error' && e.status === 502 && cause.test(e.message)));
    });
  }

  test('wss inside an intercepted connection passes through', async () => {
    const agent = new ConnectAgent(p.port, {});
    const ws = new WebSocket(`wss://localhost:${origin.port}/chat`, { agent, ca: ourCa });
    try {
      const reply = await new Promise<string>((resolve, reject) => {
        ws.once('open', () => ws.send('hi'));
        ws.once('message', (m) => resolve(m.toString()));
        ws.once('error', reject);
      });
      assert.equal(reply, 'echo /chat hi');
      assert.ok(p.events.some((e) => e.type === 'upgrade' && e.url === `https://localhost:${origin.port}/chat`));
    } finally {
      ws.terminate();
      agent.destroy();
    }
  });

  test('plain HTTP or garbage after CONNECT, a client rejecting our certificate, a foreign SNI: logged, closed, nothing else affected', async () => {
    p.events.length = 0;
    const authority = `localhost:${origin.port}`;
    const plain = await connectTunnel(p.port, authority);
    const answer = await new Promise<string>((resolve) => {
      let text = '';
      plain.on('data', (c: Buffer) => (text += c.toString()));
      plain.on('close', () => resolve(text));
      plain.write(`GET / HTTP/1.1\r\nHost: ${authority}\r\n\r\n`);
    });
    assert.match(answer, /^HTTP\/1\.1 400 /);
    assert.match(answer, /expects TLS/);
    assert.ok(p.events.some((e) => e.type === 'error' && /plain HTTP after CONNECT/.test(e.message)));

    const garbage = await connectTunnel(p.port, authority);
    await new Promise<void>((resolve) => {
      garbage.on('close', () => resolve());
      garbage.on('error', () => {});
      garbage.write(Buffer.from([0x00, 0xff, 0x13, 0x37, 0x42]));
    });
    assert.ok(p.events.some((e) => e.type === 'error' && /not a TLS handshake/.test(e.message)));

    const rejected = await curl(['-x', p.url, `https://localhost:${origin.port}/untrusted`]);
    assert.equal(rejected.code, 60, 'curl without our CA refuses the certificate');
    await waitFor(() => p.events.some((e) => e.type === 'error' && e.code === 'CLIENT_REJECTED_CA'), 'the rejected-certificate event');

    // Node's client (as npm's) rejects our certificate after the handshake and just closes: still said.
    await assert.rejects(tlsThroughProxy(p.port, authority, { servername: 'localhost' }), /UNABLE_TO_VERIFY_LEAF_SIGNATURE|unable to verify/);
    await waitFor(() => p.events.some((e) => e.type === 'error' && e.code === 'CLIENT_CLOSED_UNUSED' && /closed its connection to localhost/.test(e.message)), 'the closed-unused event');

    await assert.rejects(tlsThroughProxy(p.port, authority, { ca: ourCa, servername: 'elsewhere.example' }));
    await waitFor(() => p.events.some((e) => e.type === 'error' && /not the CONNECT host/.test(e.message)), 'the SNI event');

    const after = await curl(['--cacert', path.join(caDir, 'ca.pem'), '-x', p.url, `https://localhost:${origin.port}/still`]);
    assert.equal(after.stdout, 'secure /still', 'the proxy keeps serving');
    assert.equal(origin.count('/untrusted'), 0);
  });

  test('path-style https:// keeps working and is cached', async () => {
    const url = `${p.url}/https://localhost:${origin.port}/path-style`;
    const a = await curl(['-i', url]);
    assert.match(a.stdout, /secure \/path-style$/);
    const b = await curl(['-i', url]);
    assert.match(b.stdout, /Cache-Status: caching-proxy; hit/i);
    assert.equal(origin.count('/path-style'), 1);
  });

  test(`1,100 distinct SNI names: at most ${MAX_LEAF_CONTEXTS} TLS contexts kept, memory bounded`, async () => {
    await p.proxy.update(resolveConfig({ ...p.proxy.config, https: { ...p.proxy.config.https, intercept: ['*.many.test'] } }));
    const leaves = () => (p.proxy as unknown as { interceptor: { leaves: { size: number; made: number } } }).interceptor.leaves;
    const madeBefore = leaves().made;
    const heapBefore = process.memoryUsage().heapUsed;
    const names = Array.from({ length: 1_100 }, (_, i) => `h${i}.many.test`);
    for (let i = 0; i < names.length; i += 20) {
      await Promise.all(
        names.slice(i, i + 20).map(async (name) => {
          const socket = await tlsThroughProxy(p.port, `${name}:443`, { ca: ourCa, servername: name });
          assert.equal(socket.getPeerX509Certificate()?.subjectAltName, `DNS:${name}`);
          socket.destroy();
        }),
      );
    }
    assert.equal(leaves().made - madeBefore, 1_100, 'one leaf per name');
    assert.equal(leaves().size, MAX_LEAF_CONTEXTS, 'the LRU holds no more than its bound');
    global.gc?.();
    const grown = process.memoryUsage().heapUsed - heapBefore;
    assert.ok(grown < 64 * 1024 * 1024, `heap grew ${(grown / 1048576).toFixed(1)} MiB for 1,100 names`);
    await p.proxy.update(resolveConfig({ ...p.proxy.config, https: { ...p.proxy.config.https, intercept: ['localhost'] } }));
  });

  test('with --auth: the CONNECT needs the credentials, the requests inside TLS do not (clients send none there)', async () => {
    const authed = await startTestProxy({ auth: { username: 'u', password: 'p' }, https: { intercept: ['localhost'], caDir, upstreamCa: testCa.certPath } });
    try {
      const cacert = path.join(caDir, 'ca.pem');
      const refused = await curl(['-o', '/dev/null', '-w', '%{http_connect}', '--cacert', cacert, '-x', authed.url, `https://localhost:${origin.port}/auth`]);
      assert.equal(refused.stdout, '407');
      const ok = await curl(['--cacert', cacert, '-x', authed.url, '--proxy-user', 'u:p', `https://localhost:${origin.port}/auth`]);
      assert.equal(ok.stdout, 'secure /auth', ok.stderr);
    } finally {
      await authed.close();
    }
  });

  test('through an upstream proxy: decrypted requests leave in a CONNECT tunnel, TLS end to end, never in the clear', async () => {
    const parent = await startTestProxy({ cache: { policy: 'off' } });
    const child = await startTestProxy({ upstreamProxy: parent.url, https: { intercept: ['localhost'], caDir, upstreamCa: testCa.certPath } });
    try {
      const r = await curl(['--cacert', path.join(caDir, 'ca.pem'), '-x', child.url, `https://localhost:${origin.port}/chained`]);
      assert.equal(r.stdout, 'secure /chained', r.stderr);
      const agent = new ConnectAgent(child.port, {});
      const ws = new WebSocket(`wss://localhost:${origin.port}/chained-ws`, { agent, ca: ourCa });
      const reply = await new Promise<string>((resolve, reject) => {
        ws.once('open', () => ws.send('up'));
        ws.once('message', (m) => resolve(m.toString()));
        ws.once('error', reject);
      });
      ws.terminate();
      agent.destroy();
      assert.equal(reply, 'echo /chained-ws up');
      assert.ok(parent.events.some((e) => e.type === 'tunnel-open' && e.target === `localhost:${origin.port}`), 'the parent saw a CONNECT');
      assert.ok(!parent.events.some((e) => e.type === 'request'), 'and no request it could read');
    } finally {
      await child.close();
      await parent.close();
    }
  });

  test('intercept patterns are validated with a message naming the setting', () => {
    assert.throws(() => resolveConfig({ https: { intercept: ['exa mple.com'] } }), /https\.intercept: "exa mple\.com" is not a host pattern/);
    assert.throws(() => resolveConfig({ https: { tunnel: 'ok.example,http://x' } }), /https\.tunnel: "http:\/\/x" is not a host pattern/);
    assert.deepEqual(resolveConfig({}).https.intercept, [], 'nothing is intercepted by default');
  });
});
