import { test } from 'node:test';
import assert from 'node:assert/strict';
import type * as http from 'node:http';
import { closeServer, sleep, startOrigin, startTestProxy, viaProxy, type TestOrigin, type TestProxy } from '../helpers/net';
import { RawClient, rawRequest as get } from '../helpers/raw';
import type { ConfigInput } from '../../src/core/config';

/**
 * Once a URL's response could not be stored (hit-for-miss), plain requests for it on a
 * keep-alive connection still on the quick path are forwarded by the server's quick
 * pass-through (core/quick/) over kept-alive origin connections. The first request for
 * a URL is the ordinary path's; the tests send it on a connection of its own (viaProxy), since
 * a connection the quick path hands to Node's parser stays there. What the client and the origin see must be what the
 * ordinary path gives them, and the cases around it (a changed response, a closed origin
 * connection, an unreachable origin) must end as they do there.
 */

interface PassOrigin extends TestOrigin {
  /** What /api answers next: its Cache-Control. */
  cacheControl: string;
  /** Origin-side connections opened so far. */
  connections: number;
  /** Destroy a connection when its second request arrives (a keep-alive timeout racing the request). */
  dropReused: boolean;
}

async function startPassOrigin(): Promise<PassOrigin> {
  let served = 0;
  const perSocket = new WeakMap<object, number>();
  const handle = (req: http.IncomingMessage, res: http.ServerResponse): void => {
    const onSocket = (perSocket.get(req.socket) ?? 0) + 1;
    perSocket.set(req.socket, onSocket);
    if (state.dropReused && onSocket === 2) return void req.socket.destroy();
    served++;
    const path = new URL(req.url ?? '/', 'http://o').pathname;
    if (path === '/stream') {
      // No Content-Length: the proxy must frame it for the client.
      res.writeHead(200, { 'Cache-Control': 'no-store', 'Content-Type': 'text/plain' });
      res.write('part one, ');
      setTimeout(() => res.end('part two'), 20);
      return;
    }
    if (path === '/slow') {
      res.writeHead(200, { 'Cache-Control': 'no-store', 'Content-Length': 9 });
      res.write('slow ');
      setTimeout(() => res.end('done'), 100);
      return;
    }
    const body = `api ${served}`;
    res.writeHead(200, {
      'Cache-Control': state.cacheControl,
      'Content-Type': 'text/plain',
      'Content-Length': Buffer.byteLength(body),
      'X-Origin-Header': 'kept',
      // Hop-by-hop: named in Connection, so it is for the proxy alone.
      Connection: 'keep-alive, X-Hop',
      'X-Hop': 'not for the client',
    });
    res.end(req.method === 'HEAD' ? undefined : body);
  };
  const origin = await startOrigin(handle);
  const state = Object.assign(origin, { cacheControl: 'no-store', connections: 0, dropReused: false });
  origin.server.on('connection', () => state.connections++);
  origin.server.keepAliveTimeout = 30_000;
  return state;
}

async function withPassProxy(input: ConfigInput, fn: (origin: PassOrigin, proxy: TestProxy, client: RawClient) => Promise<void>): Promise<void> {
  const origin = await startPassOrigin();
  const proxy = await startTestProxy(input);
  const client = await RawClient.connect(proxy.port);
  try {
    await fn(origin, proxy, client);
  } finally {
    client.close();
    await proxy.close();
    await origin.close();
  }
}

test('pass-through: repeats of an unstorable URL on one connection each reach the origin over one kept-alive connection, with the fields an ordinary forward has', () =>
  withPassProxy({}, async (origin, p, client) => {
    const target = `${origin.url}/api`;
    const first = await viaProxy(p.port, target);
    const answers = [{ status: first.status, headers: first.headers as Record<string, string>, body: first.text }];
    for (let i = 0; i < 5; i++) {
      client.send(get(target));
      answers.push(await client.response());
    }
    assert.deepEqual(
      answers.map((a) => a.body),
      ['api 1', 'api 2', 'api 3', 'api 4', 'api 5', 'api 6'],
      'each answer is the origin’s, none stored',
    );
    const [ordinary, ...quick] = answers;
    for (const [i, a] of quick.entries()) {
      assert.equal(a.status, 200);
      assert.equal(a.headers['cache-status'], 'caching-proxy; fwd=miss; detail=no-store', `answer ${i + 2}`);
      assert.equal(a.headers['x-origin-header'], 'kept');
      assert.equal(a.headers['x-hop'], undefined, 'a field the origin named in Connection is not forwarded');
      assert.equal(a.headers.via, ordinary.headers.via);
      assert.equal(a.headers['content-length'], String(a.body.length));
      assert.ok(Math.abs(Date.parse(a.headers.date) - Date.now()) < 5000, 'a current Date');
    }
    assert.equal(ordinary.headers['cache-status'], quick[0].headers['cache-status'], 'the same Cache-Status as the first, ordinary forward');
    // The first request went through Node's agent; the five after it share one origin connection.
    assert.equal(origin.connections, 2, `origin connections: ${origin.connections}`);
    for (const r of origin.requests.slice(1)) {
      assert.match(String(r.headers.via), /^1\.1 caching-proxy-[0-9a-f]{6}$/, 'Via is added');
      assert.equal(r.headers['proxy-connection'], undefined);
    }
    // The output channel sees every request with its cache outcome.
    const responses = p.events.filter((e) => e.type === 'response' && e.url === target);
    assert.equal(responses.length, 6);
    for (const e of responses) assert.ok(e.type === 'response' && e.status === 200 && e.cache === 'fwd=miss; detail=no-store', JSON.stringify(e));
    assert.equal(p.events.filter((e) => e.type === 'cache' && e.action === 'miss' && e.url === target).length, 6, 'each counted as a miss');
  }));

test('pass-through: a streamed answer without a length reaches the client chunked, a HEAD gets no body, and a request sent meanwhile is answered after it', () =>
  withPassProxy({}, async (origin, p, client) => {
    const stream = `${origin.url}/stream`;
    const slow = `${origin.url}/slow`;
    for (const target of [stream, slow, `${origin.url}/api`]) await viaProxy(p.port, target);
    client.send(get(stream));
    const streamed = await client.response();
    assert.equal(streamed.headers['transfer-encoding'], 'chunked');
    assert.equal(streamed.body, 'part one, part two');
    assert.match(streamed.headers['cache-status'], /fwd=miss; detail=no-store/);

    client.send(get(stream, '', 'HEAD'));
    const head = await client.response(true);
    assert.equal(head.status, 200);
    // Sent while /slow is still being relayed: read once it is complete.
    client.send(get(slow));
    await sleep(20);
    client.send(get(`${origin.url}/api`));
    assert.equal((await client.response()).body, 'slow done');
    assert.match((await client.response()).body, /^api \d+$/);
    await sleep(50);
    assert.equal(client.pending, 0, 'nothing but the responses asked for');
  }));

test('pass-through: when the origin’s answer becomes storable the next request stores it and later ones are hits', () =>
  withPassProxy({}, async (origin, p, client) => {
    const target = `${origin.url}/api`;
    await viaProxy(p.port, target);
    for (let i = 0; i < 2; i++) {
      client.send(get(target));
      assert.match((await client.response()).headers['cache-status'], /detail=no-store/);
    }
    origin.cacheControl = 'max-age=60';
    client.send(get(target));
    const changed = await client.response();
    assert.equal(changed.body, 'api 4');
    // This answer came through the pass-through; it shows the origin now allows storing, so the mark is gone.
    client.send(get(target));
    const stored = await client.response();
    assert.equal(stored.body, 'api 5');
    assert.match(stored.headers['cache-status'], /fwd=miss; stored/);
    client.send(get(target));
    const hit = await client.response();
    assert.equal(hit.body, 'api 5');
    assert.match(hit.headers['cache-status'], /^caching-proxy; hit/);
    assert.equal(origin.requests.length, 5);
  }));

test('pass-through: an origin that closes a kept-alive connection as the next request arrives costs the client nothing (one retry on a new connection)', () =>
  withPassProxy({}, async (origin, p, client) => {
    const target = `${origin.url}/api`;
    await viaProxy(p.port, target);
    origin.dropReused = true;
    for (let i = 0; i < 4; i++) {
      client.send(get(target));
      const a = await client.response();
      assert.equal(a.status, 200, a.body);
    }
    assert.equal(p.events.filter((e) => e.type === 'error').length, 0, JSON.stringify(p.events.filter((e) => e.type === 'error')));
  }));

test('pass-through: an origin gone away gets a 502 with a readable reason, and the connection keeps serving', () =>
  withPassProxy({}, async (origin, p, client) => {
    const target = `${origin.url}/api`;
    await viaProxy(p.port, target);
    client.send(get(target));
    await client.response();
    await closeServer(origin.server);
    client.send(get(target));
    const failed = await client.response();
    assert.equal(failed.status, 502);
    assert.match(failed.body, new RegExp(`127\\.0\\.0\\.1:${origin.port}`));
    assert.match(failed.body, /refused|closed/);
    assert.equal(failed.headers['cache-control'], 'no-store');
    assert.ok(p.events.some((e) => e.type === 'error' && e.url === target && e.status === 502));
    assert.equal(client.closed, false);
    // The same connection, a request for a server that is there.
    const other = await startPassOrigin();
    try {
      client.send(get(`${other.url}/api`));
      assert.equal((await client.response()).body, 'api 1');
    } finally {
      await other.close();
    }
  }));

test('pass-through: with caching off every plain request on a keep-alive connection is forwarded, without Cache-Status', () =>
  withPassProxy({ cache: { policy: 'off' } }, async (origin, _p, client) => {
    origin.cacheControl = 'max-age=60';
    const target = `${origin.url}/api`;
    for (let i = 1; i <= 3; i++) {
      client.send(get(target));
      const a = await client.response();
      assert.equal(a.body, `api ${i}`);
      assert.equal(a.headers['cache-status'], undefined);
    }
    assert.equal(origin.connections, 1, 'one kept-alive origin connection');
  }));

test('pass-through: stopping the proxy while an answer is being relayed lets it finish, then closes the connection', () =>
  withPassProxy({}, async (origin, p, client) => {
    const slow = `${origin.url}/slow`;
    await viaProxy(p.port, slow);
    client.send(get(slow));
    await sleep(30);
    const stopped = p.close();
    assert.equal((await client.response()).body, 'slow done');
    await stopped;
    await sleep(20);
    assert.equal(client.closed, true, 'the connection is closed once the answer is complete');
  }));
