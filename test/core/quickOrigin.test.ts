import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as http from 'node:http';
import * as net from 'node:net';
import { startTestProxy, waitFor, type TestProxy } from '../helpers/net';
import { RawClient, rawRequest } from '../helpers/raw';
import { nodeHttpParser, quickOriginSupported } from '../../src/core/quick/originConnection';

/**
 * The quick pass-through writes its requests to kept-alive origin sockets itself and reads the
 * answers with Node's HTTP parser (core/quick/originConnection.ts). With caching off every plain
 * request takes it; the same request with `Pragma: no-cache` takes the ordinary pass-through
 * (Node's http client). Against origins that answer wrongly in each way we know, both must end
 * the same for the client, and a connection that carried a bad answer is never reused.
 */

/** How the scripted origin answers a path: the bytes, and whether it then closes the connection. */
interface Script {
  bytes: string;
  close?: boolean;
}

const OK = 'HTTP/1.1 200 OK\r\nContent-Length: 12\r\nCache-Control: no-store\r\n\r\nhello, fine\n';

const SCRIPTS: Record<string, Script> = {
  '/ok': { bytes: OK },
  '/length-and-chunked': { bytes: 'HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n' },
  '/two-lengths': { bytes: 'HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!' },
  '/space-before-colon': { bytes: 'HTTP/1.1 200 OK\r\nContent-Length : 2\r\n\r\nok' },
  '/bad-length': { bytes: 'HTTP/1.1 200 OK\r\nContent-Length: 2x\r\n\r\nok' },
  '/bad-version': { bytes: 'HTTP/2.7 200 OK\r\nContent-Length: 2\r\n\r\nok' },
  '/control-in-field': { bytes: 'HTTP/1.1 200 OK\r\nX-Bad: a\x01b\r\nContent-Length: 2\r\n\r\nok' },
  '/huge-head': { bytes: `HTTP/1.1 200 OK\r\nX-Big: ${'b'.repeat(20_000)}\r\nContent-Length: 2\r\n\r\nok` },
  '/bad-chunk': { bytes: 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n' },
  '/unrequested-switch': { bytes: 'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n' },
  '/interim-then-final': { bytes: 'HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok' },
  '/until-close': { bytes: 'HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nall of it, until the close', close: true },
  '/chunked': { bytes: 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nchun\r\n3;ext=1\r\nked\r\n0\r\nX-Trailer: t\r\n\r\n' },
  '/many-fields': { bytes: `HTTP/1.1 200 OK\r\n${Array.from({ length: 40 }, (_, i) => `X-F${i}: ${i}\r\n`).join('')}Content-Length: 2\r\n\r\nok` },
  '/http10': { bytes: 'HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok' },
  '/short-keep-alive': { bytes: 'HTTP/1.1 200 OK\r\nKeep-Alive: timeout=1\r\nContent-Length: 2\r\n\r\nok' },
  '/bytes-after': { bytes: 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\nX-Smuggled: yes\r\nContent-Length: 3\r\n\r\nbad' },
  '/cut-body': { bytes: 'HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly this', close: true },
  '/cut-head': { bytes: 'HTTP/1.1 200 OK\r\nContent-Le', close: true },
  '/hang-up': { bytes: '', close: true },
};

interface ScriptedOrigin {
  url: string;
  /** Connections accepted so far. */
  connections: number;
  /** Open now. */
  open(): number;
  close(): Promise<void>;
}

async function startScriptedOrigin(): Promise<ScriptedOrigin> {
  const sockets = new Set<net.Socket>();
  const state = { connections: 0 };
  const server = net.createServer((socket) => {
    state.connections++;
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => socket.destroy());
    let buffered = '';
    socket.on('data', (chunk: Buffer) => {
      buffered += chunk.toString('latin1');
      for (let end = buffered.indexOf('\r\n\r\n'); end >= 0; end = buffered.indexOf('\r\n\r\n')) {
        const [method, target] = buffered.slice(0, end).split(' ');
        buffered = buffered.slice(end + 4);
        const script = SCRIPTS[target.replace(/\?.*$/, '')] ?? SCRIPTS['/ok'];
        // A HEAD gets the same head (and the bytes after it are not sent).
        const bytes = method === 'HEAD' && script === SCRIPTS['/ok'] ? OK.slice(0, OK.indexOf('\r\n\r\n') + 4) : script.bytes;
        if (script.close) socket.end(bytes);
        else socket.write(bytes);
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as net.AddressInfo).port;
  return Object.assign(state, {
    url: `http://127.0.0.1:${port}`,
    open: () => sockets.size,
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  });
}

interface Outcome {
  status?: number;
  /** The body arrived whole by its framing. */
  complete: boolean;
  body: string;
  headers: http.IncomingHttpHeaders;
  error?: string;
}

/** One GET through the proxy on a kept-alive client connection of its own, read by Node's strict client. */
function fetchOutcome(proxyPort: number, url: string, ordinary: boolean): Promise<Outcome> {
  const agent = new http.Agent({ keepAlive: true });
  return new Promise<Outcome>((resolve) => {
    const headers: Record<string, string> = { host: new URL(url).host };
    if (ordinary) headers.pragma = 'no-cache';
    const req = http.request({ host: '127.0.0.1', port: proxyPort, path: url, headers, agent });
    req.on('response', (res) => {
      let body = '';
      let done = false;
      const finish = () => {
        if (done) return;
        done = true;
        resolve({ status: res.statusCode, complete: res.complete, body, headers: res.headers });
      };
      res.setEncoding('latin1');
      res.on('data', (c: string) => (body += c));
      res.on('end', finish);
      res.on('error', finish);
      res.on('close', finish);
    });
    req.on('error', (err: NodeJS.ErrnoException) => resolve({ complete: false, body: '', headers: {}, error: err.code ?? err.message }));
    req.end();
  }).finally(() => agent.destroy());
}

/** What a client can tell apart: the status (or none), whether the body was whole, and the body when it was. */
function seen(o: Outcome): string {
  if (o.status === undefined) return `no response (${o.error})`;
  if (!o.complete) return `${o.status}, broken`;
  return o.status >= 500 ? `${o.status}` : `${o.status} ${JSON.stringify(o.body)}`;
}

async function withProxy(fn: (origin: ScriptedOrigin, proxy: TestProxy) => Promise<void>): Promise<void> {
  const origin = await startScriptedOrigin();
  const proxy = await startTestProxy({ cache: { policy: 'off' }, timeoutSeconds: 2 });
  try {
    await fn(origin, proxy);
  } finally {
    await proxy.close();
    await origin.close();
  }
}

test('quick pass-through: each malformed origin answer ends for the client as on the ordinary pass-through, and the next answers are right', () =>
  withProxy(async (origin, p) => {
    const expected: Record<string, string> = {
      '/length-and-chunked': '502',
      '/two-lengths': '502',
      '/space-before-colon': '502',
      '/bad-length': '502',
      '/bad-version': '502',
      '/control-in-field': '502',
      '/huge-head': '502',
      '/bad-chunk': '200, broken',
      '/unrequested-switch': '502',
      '/interim-then-final': '200 "ok"',
      '/until-close': '200 "all of it, until the close"',
      '/chunked': '200 "chunked"',
      '/many-fields': '200 "ok"',
      '/http10': '200 "ok"',
      '/short-keep-alive': '200 "ok"',
      '/bytes-after': '200 "ok"',
      '/cut-body': '200, broken',
      '/cut-head': '502',
      '/hang-up': '502',
    };
    for (const [path, outcome] of Object.entries(expected)) {
      const url = `${origin.url}${path}`;
      const quick = await fetchOutcome(p.port, url, false);
      const ordinary = await fetchOutcome(p.port, url, true);
      assert.equal(seen(quick), outcome, `${path} on the quick pass-through: ${JSON.stringify(quick).slice(0, 300)}`);
      assert.equal(seen(ordinary), seen(quick), `${path}: the ordinary pass-through ends the same`);
      if (quick.status === 502) assert.match(quick.body, /invalid HTTP response|closed the connection/, path);
      if (path === '/many-fields') for (let i = 0; i < 40; i++) assert.equal(quick.headers[`x-f${i}`], String(i));
      if (path === '/until-close') assert.equal(quick.headers['transfer-encoding'], 'chunked', 'a body delimited by the close is chunked for the client');
      // The origin connection that carried it is not poisoned (or not reused): the next answers are the origin's real ones.
      for (let i = 0; i < 2; i++) assert.equal(seen(await fetchOutcome(p.port, `${origin.url}/ok?after=${path.slice(1)}`, false)), '200 "hello, fine\\n"', `after ${path}`);
    }
    // Every failure was logged as an error with the target; none took the proxy down.
    assert.ok(p.events.some((e) => e.type === 'error' && e.status === 502 && /invalid HTTP response/.test(e.message)));
  }));

test('quick pass-through: a connection is reused only after a clean, kept-alive answer; bytes after an answer never reach a client', () =>
  withProxy(async (origin, p) => {
    const client = await RawClient.connect(p.port);
    try {
      const ask = async (path: string, method = 'GET') => {
        client.send(rawRequest(`${origin.url}${path}`, '', method));
        return client.response(method === 'HEAD');
      };
      assert.equal((await ask('/ok')).body, 'hello, fine\n');
      // A HEAD's answer has a Content-Length but no body; the connection stays in step.
      const head = await ask('/ok', 'HEAD');
      assert.equal(head.headers['content-length'], '12');
      for (let i = 0; i < 3; i++) assert.equal((await ask('/ok')).body, 'hello, fine\n');
      assert.equal(origin.connections, 1, 'one kept-alive origin connection for five requests');

      const cases: Array<[string, string]> = [
        ['/bytes-after', 'the bytes after its answer'],
        ['/http10', 'an HTTP/1.0 answer without keep-alive'],
        ['/short-keep-alive', 'a Keep-Alive hint of one second (less our margin: none)'],
        ['/until-close', 'an answer delimited by the close'],
      ];
      for (const [path, why] of cases) {
        const before: number = origin.connections;
        const a = await ask(path);
        assert.equal(a.status, 200, path);
        assert.equal(a.headers['x-smuggled'], undefined);
        const next = await ask('/ok');
        assert.equal(next.body, 'hello, fine\n', `after ${path}`);
        assert.equal(next.headers['x-smuggled'], undefined, `after ${path}`);
        assert.equal(origin.connections, before + 1, `${why}: its connection is not reused`);
      }
      await new Promise((r) => setTimeout(r, 50));
      assert.equal(client.pending, 0, 'nothing but the answers asked for');
    } finally {
      client.close();
    }
  }));

test('quick pass-through: clients that leave mid-answer close their origin connections; the origin is left with the kept-alive ones only', () =>
  withProxy(async (origin, p) => {
    const endless = await startEndlessOrigin();
    try {
      const leave = async () => {
        const s = net.connect(p.port, '127.0.0.1');
        s.write(rawRequest(`${endless.url}/endless`));
        await new Promise<void>((r) => s.once('data', () => r()));
        s.destroy();
      };
      for (let i = 0; i < 40; i += 10) await Promise.all(Array.from({ length: 10 }, leave));
      await waitFor(() => endless.open() === 0, `the origin's connections to close (open: ${endless.open()})`);
      assert.equal(endless.aborted, 40);
      // And the proxy goes on serving over its pools.
      assert.equal(seen(await fetchOutcome(p.port, `${origin.url}/ok`, false)), '200 "hello, fine\\n"');
    } finally {
      await endless.close();
    }
  }));

async function startEndlessOrigin(): Promise<{ url: string; open(): number; aborted: number; close(): Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const state = { aborted: 0 };
  const server = http.createServer((_req, res) => {
    res.writeHead(200, { 'Content-Type': 'application/octet-stream' });
    const timer = setInterval(() => res.write(Buffer.alloc(16 * 1024, 'e')), 5);
    res.on('close', () => {
      clearInterval(timer);
      if (!res.writableFinished) state.aborted++;
    });
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return Object.assign(state, {
    url: `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`,
    open: () => sockets.size,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  });
}

test('quick pass-through: Node\'s parser is found on this runtime, and a runtime without it turns the quick pass-through off instead of failing to start', () => {
  // If this first check fails, a new Node or Electron changed `_http_common`: the proxy still runs, only slower.
  assert.equal(quickOriginSupported, true);
  assert.ok(nodeHttpParser() !== null);
  const real = nodeHttpParser()!;
  assert.equal(nodeHttpParser(() => { throw new Error("Cannot find module '_http_common'"); }), null);
  assert.equal(nodeHttpParser(() => ({})), null);
  assert.equal(nodeHttpParser(() => null), null);
  const fields = ['RESPONSE', 'kOnMessageBegin', 'kOnHeaders', 'kOnHeadersComplete', 'kOnBody', 'kOnMessageComplete', 'kLenientNone'];
  const copy = (omit: string): unknown => {
    function Parser(): void {}
    for (const field of fields) if (field !== omit) (Parser as unknown as Record<string, unknown>)[field] = (real as unknown as Record<string, unknown>)[field];
    Parser.prototype = real.prototype;
    return Parser;
  };
  assert.ok(nodeHttpParser(() => ({ HTTPParser: copy('') })) !== null, 'a faithful copy is accepted');
  assert.equal(nodeHttpParser(() => ({ HTTPParser: copy('kOnBody') })), null);
  const withoutMethod = copy('');
  (withoutMethod as { prototype: object }).prototype = {};
  assert.equal(nodeHttpParser(() => ({ HTTPParser: withoutMethod })), null);
  assert.equal(nodeHttpParser(() => ({ HTTPParser: real })), real);
});
