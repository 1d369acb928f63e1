import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { sleep, startOrigin, viaProxy } from '../helpers/net';
import { RawClient, rawRequest as get, type RawResponse } from '../helpers/raw';
import { withOriginAndProxy, withProxy } from './origin';

/**
 * The server answers plain GET/HEAD hits on its quick path (core/quickFront.ts) and hands a
 * connection to Node's parser at the first request it declines. These tests speak raw HTTP on
 * one keep-alive connection, as curl and browsers do, and check what the client receives.
 */

test('quick path: a fresh hit on a keep-alive connection carries what an ordinary hit carries; a declined request hands the connection over and it keeps working', () =>
  withProxy({}, async (origin, p) => {
    const target = `${origin.url}/max-age`;
    assert.equal((await viaProxy(p.port, target)).text, 'max-age v1');
    // Connection: close is declined by the quick path: this hit is the ordinary path's, for comparison.
    const ordinary = await viaProxy(p.port, target);
    assert.match(String(ordinary.headers['cache-status']), /; hit; ttl=\d+$/);

    const client = await RawClient.connect(p.port);
    try {
      const eventsBefore = p.events.length;
      client.send(get(target));
      const quick = await client.response();
      assert.equal(quick.status, 200);
      assert.equal(quick.body, 'max-age v1');
      assert.match(quick.headers['cache-status'], /^caching-proxy; hit; ttl=\d+$/);
      assert.equal(quick.headers['content-length'], String('max-age v1'.length));
      const hopByHop = new Set(['connection', 'keep-alive', 'transfer-encoding']);
      const names = (h: Record<string, unknown>) => Object.keys(h).filter((n) => !hopByHop.has(n)).sort();
      assert.deepEqual(names(quick.headers), names(ordinary.headers), 'the same header fields as an ordinary hit');
      for (const name of ['via', 'cache-control', 'content-type', 'etag', 'last-modified']) {
        if (ordinary.headers[name] !== undefined) assert.equal(quick.headers[name], ordinary.headers[name], name);
      }
      assert.ok(Math.abs(Number(quick.headers.age) - Number(ordinary.headers.age)) <= 1);
      assert.ok(Math.abs(Date.parse(quick.headers.date) - Date.now()) < 5000, 'a current Date');
      // The log sees it like any other request.
      const logged = p.events.slice(eventsBefore);
      const response = logged.find((e) => e.type === 'response');
      assert.ok(response && response.type === 'response' && response.url === target && response.status === 200 && /^hit/.test(response.cache ?? ''), JSON.stringify(logged));
      assert.ok(logged.some((e) => e.type === 'request' && e.url === target));
      assert.ok(logged.some((e) => e.type === 'cache' && e.action === 'hit'));

      client.send(get(target, '', 'HEAD'));
      const head = await client.response(true);
      assert.equal(head.status, 200);
      assert.equal(head.headers['content-length'], String('max-age v1'.length));

      // A request the quick path declines (it carries a body) on the same connection: Node's parser takes over.
      client.send(`POST ${origin.url}/no-store HTTP/1.1\r\nHost: ${new URL(target).host}\r\nContent-Length: 5\r\n\r\nhello`);
      const posted = await client.response();
      assert.equal(posted.body, 'no-store body');
      client.send(get(target));
      const after = await client.response();
      assert.equal(after.body, 'max-age v1');
      assert.match(after.headers['cache-status'], /; hit; /);
      assert.equal(origin.count('/max-age'), 1, 'every repeat was a hit');
      await sleep(50);
      assert.equal(client.pending, 0, 'nothing but the responses asked for');
    } finally {
      client.close();
    }
  }));

test('quick path: a head split across packets, pipelined requests and requests that ask the cache something are answered in order', () =>
  withProxy({}, async (origin, p) => {
    const a = `${origin.url}/max-age`;
    const b = `${origin.url}/style.css`;
    await viaProxy(p.port, a);
    await viaProxy(p.port, b);

    const split = await RawClient.connect(p.port);
    try {
      const request = get(a);
      split.send(request.slice(0, 20));
      await sleep(50);
      split.send(request.slice(20));
      const r = await split.response();
      assert.equal(r.body, 'max-age v1');
      assert.match(r.headers['cache-status'], /; hit; /);
    } finally {
      split.close();
    }

    const pipelined = await RawClient.connect(p.port);
    try {
      pipelined.send(get(a) + get(b) + get(a, '', 'HEAD') + get(a));
      const bodies = [await pipelined.response(), await pipelined.response(), await pipelined.response(true), await pipelined.response()].map((r) => r.body);
      assert.deepEqual(bodies, ['max-age v1', 'asset /style.css', '', 'max-age v1']);
    } finally {
      pipelined.close();
    }

    const asking = await RawClient.connect(p.port);
    try {
      // Each of these is for the cache's ordinary path: a directive, a validator the client holds.
      asking.send(get(a));
      assert.match((await asking.response()).headers['cache-status'], /; hit; /);
      asking.send(get(a, 'Cache-Control: no-cache\r\n'));
      assert.match((await asking.response()).headers['cache-status'], /fwd=request/);
      const c = `${origin.url}/etag-fresh`;
      await viaProxy(p.port, c);
      asking.send(get(c, `If-None-Match: "v1"\r\n`));
      const notModified = await asking.response(true);
      assert.equal(notModified.status, 304);
      assert.equal(origin.count('/etag-fresh'), 1, 'the cache itself told the client its copy is current');
    } finally {
      asking.close();
    }
    assert.equal(origin.count('/max-age'), 2, 'one miss and the no-cache reload');
  }));

test('quick path: an entry asked for again and again within a second answers the same each time, HEAD without a body; other spellings of its URL reach it', () =>
  withProxy({}, async (origin, p) => {
    const target = `${origin.url}/max-age`;
    await viaProxy(p.port, target);
    const client = await RawClient.connect(p.port);
    try {
      // Past the first few requests in a second the entry's answer is reused (Cache.quickAnswer).
      const answers: RawResponse[] = [];
      for (let i = 0; i < 10; i++) {
        const head = i === 7;
        client.send(get(target, '', head ? 'HEAD' : 'GET'));
        answers.push(await client.response(head));
      }
      for (const [i, answer] of answers.entries()) {
        assert.equal(answer.status, 200);
        assert.equal(answer.body, i === 7 ? '' : 'max-age v1', `answer ${i}`);
        assert.equal(answer.headers['content-length'], '10');
        assert.match(answer.headers['cache-status'], /^caching-proxy; hit; ttl=\d+$/);
        assert.deepEqual(Object.keys(answer.headers).sort(), Object.keys(answers[0].headers).sort(), `answer ${i}`);
      }
      await sleep(50);
      assert.equal(client.pending, 0, 'nothing but the responses asked for');

      const port = new URL(origin.url).port;
      for (const spelling of [`http://127.0.0.1:0${port}/max-age`, `${origin.url}/./max-age`, `${origin.url}/x/../max-age`]) {
        client.send(get(spelling));
        const answer = await client.response();
        assert.equal(answer.body, 'max-age v1', spelling);
        assert.match(answer.headers['cache-status'], /; hit; /, spelling);
      }
      assert.equal(origin.count('/max-age'), 1, 'every repeat was a hit');
    } finally {
      client.close();
    }
  }));

test('quick path: a client that sends many requests without reading gets every answer, in order, and the proxy does not read ahead without bound', () =>
  withProxy({ cache: { maxMemoryMB: 64 } }, async (origin, p) => {
    const target = `${origin.url}/big?size=262144`;
    const first = await viaProxy(p.port, target);
    assert.equal(first.body.length, 262144);
    const client = await RawClient.connect(p.port);
    client.socket.pause();
    try {
      const n = 200;
      const hitsBefore = p.proxy.cache.stats().hits;
      const answered = () => p.proxy.cache.stats().hits - hitsBefore;
      // One request at a time, each sent once the previous one is answered, until the proxy stops answering.
      let sent = 0;
      while (sent < n) {
        client.send(get(target));
        sent++;
        const deadline = Date.now() + 300;
        while (answered() < sent && Date.now() < deadline) await sleep(5);
        if (answered() < sent) break;
      }
      // 200 x 256 KiB is far beyond what the socket buffers hold: a proxy still reading would have answered them all into memory.
      assert.ok(sent < n, `answered all ${n} requests (${(n * 256) / 1024} MiB) while the client read nothing`);
      client.socket.resume();
      for (let i = 0; i < sent; i++) {
        const r = await client.response();
        assert.equal(r.status, 200);
        assert.equal(r.headers['content-length'], '262144');
        assert.equal(Buffer.byteLength(r.body, 'utf8'), 262144);
      }
      assert.equal(answered(), sent);
      assert.equal(origin.count('/big?size=262144'), 1);
    } finally {
      client.close();
    }
  }));

test('quick path: a connection Node\'s parser took for a miss is read by the quick path again once idle, and nothing sent meanwhile is lost', () =>
  withProxy({}, async (origin, p) => {
    const asset = `${origin.url}/max-age?asset`;
    assert.equal((await viaProxy(p.port, asset)).text, 'max-age v1');
    const client = await RawClient.connect(p.port);
    try {
      // A browser's connection: its first request is a miss, so Node's parser reads it...
      client.send(get(`${origin.url}/max-age?page=1`));
      const miss = await client.response();
      assert.match(miss.headers['cache-status'], /fwd=miss; stored/);
      assert.equal(miss.headers['keep-alive'], 'timeout=30', "Node's answer names its keep-alive timeout");
      // ...and once that answer is out, the quick path reads it again: its answers carry no Keep-Alive field.
      for (let i = 0; i < 3; i++) {
        client.send(get(asset));
        const hit = await client.response();
        assert.equal(hit.body, 'max-age v1');
        assert.match(hit.headers['cache-status'], /; hit; /);
        assert.equal(hit.headers['keep-alive'], undefined, `hit ${i} was answered by the quick path`);
      }
      // A miss with the start of the next request behind it: the parser is inside that request
      // when the miss is answered, so it keeps the connection and reads the rest.
      const next = get(asset);
      client.send(get(`${origin.url}/max-age?page=2`) + next.slice(0, 20));
      const second = await client.response();
      assert.match(second.headers['cache-status'], /fwd=miss; stored/);
      await sleep(50);
      client.send(next.slice(20));
      const completed = await client.response();
      assert.equal(completed.body, 'max-age v1');
      assert.equal(completed.headers['keep-alive'], 'timeout=30', 'answered by Node, which had its first bytes');
      // Pipelined behind a miss: a hit and another miss, answered in order.
      client.send(get(`${origin.url}/max-age?page=3`) + get(asset) + get(`${origin.url}/max-age?page=4`));
      const answers = [await client.response(), await client.response(), await client.response()];
      assert.deepEqual(answers.map((a) => /fwd=miss/.test(a.headers['cache-status']) ? 'miss' : 'hit'), ['miss', 'hit', 'miss']);
      // Idle again: back on the quick path.
      client.send(get(asset));
      assert.equal((await client.response()).headers['keep-alive'], undefined);
      assert.equal(origin.count('/max-age?asset'), 1, 'every repeat of the asset was a hit');
      await sleep(50);
      assert.equal(client.pending, 0, 'nothing but the responses asked for');
    } finally {
      client.close();
    }
  }));

for (const tier of ['memory', 'disk'] as const) {
  test(`quick path (${tier} tier): a URL whose response starts to vary is not answered with its earlier response without Vary`, async () => {
    // The quick hit looks the plain key up first; the plain response stored before the URL
    // varied must leave memory when a varying one is stored, or it would answer every language.
    let varies = false;
    const origin = await startOrigin((req, res) => {
      const headers: Record<string, string> = { 'Content-Type': 'text/plain', 'Cache-Control': 'max-age=600' };
      if (varies) headers.Vary = 'Accept-Language';
      const body = varies ? `lang ${req.headers['accept-language'] ?? 'none'}` : 'plain';
      res.writeHead(200, { ...headers, 'Content-Length': Buffer.byteLength(body) });
      res.end(body);
    });
    const dir = tier === 'disk' ? fs.mkdtempSync(path.join(os.tmpdir(), 'cp-quick-vary-')) : null;
    try {
      await withOriginAndProxy(origin, { cache: { dir } }, async (o, p) => {
        const target = `${o.url}/starts-varying`;
        const client = await RawClient.connect(p.port);
        try {
          client.send(get(target));
          assert.equal((await client.response()).body, 'plain');
          client.send(get(target));
          assert.equal((await client.response()).body, 'plain', 'a quick hit');
          varies = true;
          // A reload (no-cache) stores the URL's new, varying response, for German.
          client.send(get(target, 'Accept-Language: de\r\nCache-Control: no-cache\r\n'));
          assert.equal((await client.response()).body, 'lang de');
          client.send(get(target, 'Accept-Language: de\r\n'));
          const de = await client.response();
          assert.equal(de.body, 'lang de');
          assert.match(de.headers['cache-status'], /; hit/);
          client.send(get(target, 'Accept-Language: en\r\n'));
          const en = await client.response();
          assert.equal(en.body, 'lang en', 'not the response stored before the URL varied');
          assert.doesNotMatch(en.headers['cache-status'], /; hit/);
          client.send(get(target));
          assert.equal((await client.response()).body, 'lang none');
        } finally {
          client.close();
        }
      });
    } finally {
      if (dir) fs.rmSync(dir, { recursive: true, force: true });
    }
  });
}

/** Waits until the wall clock is just past a whole second (a burst of requests then falls within one second). */
async function nextSecond(): Promise<void> {
  await sleep(1000 - (Date.now() % 1000) + 20);
}

/** `n` requests one after another on `client`: the quick path's answers, each checked to be whole. */
async function quickHits(client: RawClient, target: string, n: number, body: string): Promise<RawResponse[]> {
  const answers: RawResponse[] = [];
  for (let i = 0; i < n; i++) {
    client.send(get(target));
    const r = await client.response();
    assert.equal(r.status, 200);
    assert.equal(r.body.length, body.length);
    assert.ok(r.body === body, 'the stored body');
    assert.match(r.headers['cache-status'], /^caching-proxy; hit; ttl=\d+$/);
    assert.equal(r.headers['keep-alive'], undefined, 'answered by the quick path');
    answers.push(r);
  }
  return answers;
}

test('quick path: a hot hit with a large body (written after its head, which is reused within a second) has the Age and ttl of its second', async () => {
  const body = 'large '.repeat(7000);
  const origin = await startOrigin((_req, res) => {
    res.writeHead(200, { 'Content-Type': 'text/plain', 'Cache-Control': 'max-age=600', 'Content-Length': body.length, ETag: '"v1"' });
    res.end(body);
  });
  await withOriginAndProxy(
    origin,
    {},
    async (o, p) => {
      const target = `${o.url}/large-hot`;
      assert.equal((await viaProxy(p.port, target)).text, body);
      const client = await RawClient.connect(p.port);
      try {
        await nextSecond();
        const first = await quickHits(client, target, 8, body);
        await nextSecond();
        const second = await quickHits(client, target, 8, body);
        const ages = [...first, ...second].map((r) => Number(r.headers.age));
        for (let i = 1; i < ages.length; i++) assert.ok(ages[i] >= ages[i - 1], `Age never goes back: ${ages}`);
        assert.ok(Number(second[7].headers.age) >= Number(first[0].headers.age) + 1, `a second later, Age is a second more: ${ages}`);
        const ttl = (r: RawResponse) => Number(/ttl=(\d+)/.exec(r.headers['cache-status'])![1]);
        assert.ok(ttl(second[7]) <= ttl(first[0]) - 1, 'and ttl a second less');
        assert.equal(o.count('/large-hot'), 1);
      } finally {
        client.close();
      }
    },
  );
});

test('quick path: after a 304 updates a stored response, its quick hits (small and large bodies) carry the new fields', async () => {
  const bodies: Record<string, string> = { '/small-reval': 'small body', '/large-reval': 'large '.repeat(7000) };
  let version = 1;
  const origin = await startOrigin((req, res) => {
    const fields = { 'Content-Type': 'text/plain', 'Cache-Control': version === 1 ? 'max-age=1' : 'max-age=600', ETag: '"same"', 'X-Version': String(version) };
    if (req.headers['if-none-match'] === '"same"') {
      res.writeHead(304, fields);
      res.end();
      return;
    }
    const body = bodies[req.url!];
    res.writeHead(200, { ...fields, 'Content-Length': body.length });
    res.end(body);
  });
  await withOriginAndProxy(origin, {}, async (o, p) => {
    const client = await RawClient.connect(p.port);
    try {
      for (const [pathname, body] of Object.entries(bodies)) {
        version = 1;
        const target = `${o.url}${pathname}`;
        assert.equal((await viaProxy(p.port, target)).text, body);
        // Hot: within one second its answer (small) or head (large) is kept.
        for (const r of await quickHits(client, target, 6, body)) assert.equal(r.headers['x-version'], '1');
        // Stale after max-age=1: the next request revalidates and the origin's 304 brings new fields.
        await sleep(2100);
        version = 2;
        client.send(get(target));
        const revalidated = await client.response();
        assert.equal(revalidated.body, body);
        assert.match(revalidated.headers['cache-status'], /fwd=stale; fwd-status=304/);
        assert.equal(revalidated.headers['x-version'], '2');
        for (const r of await quickHits(client, target, 6, body)) {
          assert.equal(r.headers['x-version'], '2', 'the updated field');
          assert.equal(r.headers['cache-control'], 'max-age=600');
          assert.ok(Number(r.headers.age) <= 1, `Age from the 304, not from the first response: ${r.headers.age}`);
        }
        assert.equal(origin.requests.filter((r) => r.url === pathname).length, 2);
      }
    } finally {
      client.close();
    }
  });
});
