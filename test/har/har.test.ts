import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as http from 'node:http';
import { mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import type { AddressInfo } from 'node:net';
import { curl, startTestProxy, viaProxy, waitFor } from '../helpers/net';
import { startHttpsOrigin, TestCa } from '../helpers/tls';
import { runCli, startCliProxy, type CliProxy } from '../helpers/processes';
import { harSchemaErrors } from './schema';

const BINARY = Buffer.from(Array.from({ length: 300 }, (_, i) => (i * 37) % 256));
const GZIPPED = zlib.gzipSync(Buffer.from('{"compressed":true,"items":[1,2,3]}'));
const CHUNKED = ['first part, ', 'second part, ', 'last part'];

interface HarDoc {
  log: { entries: Array<{ request: { method: string; url: string; headers: { name: string; value: string }[]; postData?: { text?: string } }; response: { status: number; headers: { name: string; value: string }[]; content: { text?: string; encoding?: string; size: number } }; _cachingProxy?: Record<string, unknown> }> };
}

/**
 * A real origin (on `port`, so that the URLs in a HAR file reach it again after a restart):
 * cacheable text, JSON, binary, gzip, chunked, a Vary'd page, and a counter for POST.
 */
async function startShop(port = 0): Promise<Shop> {
  let posts = 0;
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => answer(req, res, Buffer.concat(chunks)));
  });
  const answer = (req: http.IncomingMessage, res: http.ServerResponse, body: Buffer) => {
    const url = req.url ?? '/';
    if (req.method === 'POST') {
      posts++;
      res.writeHead(201, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ order: posts, received: body.toString() }));
      return;
    }
    if (url === '/text') {
      res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'max-age=600', etag: '"t1"' });
      res.end('plain text, ünïcode ✓');
    } else if (url === '/data.json?page=2') {
      res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'max-age=600' });
      res.end('{"page":2}');
    } else if (url === '/bin') {
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'cache-control': 'max-age=600' });
      res.end(BINARY);
    } else if (url === '/gz') {
      res.writeHead(200, { 'content-type': 'application/json', 'content-encoding': 'gzip', 'cache-control': 'max-age=600' });
      res.end(GZIPPED);
    } else if (url === '/chunked') {
      res.writeHead(200, { 'content-type': 'text/plain', 'cache-control': 'max-age=600' });
      let i = 0;
      const next = () => (i < CHUNKED.length - 1 ? (res.write(CHUNKED[i++]), setTimeout(next, 5)) : res.end(CHUNKED[i]));
      next();
    } else if (url === '/greeting') {
      const lang = String(req.headers['accept-language'] ?? 'en');
      res.writeHead(200, { 'content-type': 'text/plain', 'cache-control': 'max-age=600', vary: 'Accept-Language' });
      res.end(lang.startsWith('fr') ? 'bonjour' : 'hello');
    } else if (url === '/session') {
      res.writeHead(200, { 'content-type': 'text/plain', 'cache-control': 'public, max-age=600', 'set-cookie': 'sid=s3cr3t; HttpOnly', 'x-upstream-token': 'tok-123' });
      res.end('with a cookie');
    } else {
      res.writeHead(404, { 'content-type': 'text/plain' });
      res.end('no such page');
    }
  };
  await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
  const bound = (server.address() as AddressInfo).port;
  return {
    port: bound,
    url: `http://127.0.0.1:${bound}`,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

interface Shop {
  port: number;
  url: string;
  close(): Promise<void>;
}

const tmp = () => mkdtempSync(path.join(os.tmpdir(), 'cp-har-'));
const readHar = (file: string) => JSON.parse(readFileSync(file, 'utf8')) as HarDoc;
const header = (hs: { name: string; value: string }[], name: string) => hs.find((h) => h.name.toLowerCase() === name)?.value;

describe('HAR: export, import, record, replay', () => {
  let origin: Shop;
  const dir = tmp();
  let exported = '';

  before(async () => {
    origin = await startShop();
  });
  after(() => origin.close());

  test('export-har writes the stored entries as valid HAR 1.2: text, base64 binary, decoded gzip, Vary variants, metadata, redaction', async () => {
    const proxy = await startCliProxy(['--cache-dir', path.join(dir, 'cache'), '--quiet']);
    try {
      for (const p of ['/text', '/data.json?page=2', '/bin', '/gz', '/chunked', '/session']) assert.equal((await viaProxy(proxy.port, origin.url + p)).status, 200, p);
      assert.equal((await viaProxy(proxy.port, origin.url + '/greeting', { headers: { 'accept-language': 'fr' } })).text, 'bonjour');
      assert.equal((await viaProxy(proxy.port, origin.url + '/greeting', { headers: { 'accept-language': 'en' } })).text, 'hello');
    } finally {
      assert.equal(await proxy.stop(), 0);
    }
    exported = path.join(dir, 'export.har');
    const r = await runCli(['export-har', '--cache-dir', path.join(dir, 'cache'), '-o', exported]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /8 entries written to .*export\.har/);
    const har = readHar(exported);
    assert.deepEqual(harSchemaErrors(har), []);
    const byUrl = new Map(har.log.entries.map((e) => [`${e.request.url} ${header(e.request.headers, 'accept-language') ?? ''}`, e]));
    const text = byUrl.get(`${origin.url}/text `)!;
    assert.equal(text.response.content.text, 'plain text, ünïcode ✓');
    assert.equal(text.response.content.encoding, undefined);
    assert.equal(text._cachingProxy?.key, `GET ${origin.url}/text`);
    assert.equal(typeof text._cachingProxy?.storedAt, 'number');
    const bin = byUrl.get(`${origin.url}/bin `)!;
    assert.equal(bin.response.content.encoding, 'base64');
    assert.deepEqual(Buffer.from(bin.response.content.text!, 'base64'), BINARY);
    const gz = byUrl.get(`${origin.url}/gz `)!;
    assert.equal(gz.response.content.text, '{"compressed":true,"items":[1,2,3]}', 'HAR viewers get the decoded content');
    assert.deepEqual(Buffer.from(String(gz._cachingProxy?.encodedBody), 'base64'), GZIPPED);
    assert.equal(byUrl.get(`${origin.url}/greeting fr`)?.response.content.text, 'bonjour', 'the variant keeps the request field it varies on');
    assert.equal(byUrl.get(`${origin.url}/chunked `)?.response.content.text, CHUNKED.join(''));
    const session = byUrl.get(`${origin.url}/session `)!;
    assert.equal(header(session.response.headers, 'set-cookie'), '[redacted by caching-proxy]');
    assert.equal(header(session.response.headers, 'x-upstream-token'), '[redacted by caching-proxy]');
    assert.doesNotMatch(readFileSync(exported, 'utf8'), /s3cr3t|tok-123/);

    const kept = await runCli(['export-har', '--cache-dir', path.join(dir, 'cache'), '--no-redact', '--match', '*/session']);
    assert.equal(kept.code, 0, kept.stderr);
    const one = JSON.parse(kept.stdout) as HarDoc;
    assert.equal(one.log.entries.length, 1, '--match selects by URL; no -o writes to standard output');
    assert.equal(header(one.log.entries[0].response.headers, 'set-cookie'), 'sid=s3cr3t; HttpOnly');
  });

  test('the export imported into an empty cache is served offline, byte for byte, with the origin stopped', async () => {
    const fresh = path.join(dir, 'imported');
    const r = await runCli(['import-har', exported, '--cache-dir', fresh]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /8 of 8 entries stored in the cache/);
    const proxy = await startCliProxy(['--cache-dir', fresh, '--policy', 'offline', '--quiet']);
    try {
      const expect: [string, Buffer, Record<string, string>?][] = [
        ['/text', Buffer.from('plain text, ünïcode ✓')],
        ['/data.json?page=2', Buffer.from('{"page":2}')],
        ['/bin', BINARY],
        ['/gz', GZIPPED],
        ['/chunked', Buffer.from(CHUNKED.join(''))],
        ['/greeting', Buffer.from('bonjour'), { 'accept-language': 'fr' }],
        ['/greeting', Buffer.from('hello'), { 'accept-language': 'en' }],
      ];
      await origin.close();
      for (const [p, body, headers] of expect) {
        const res = await viaProxy(proxy.port, origin.url + p, { headers });
        assert.equal(res.status, 200, p);
        assert.deepEqual(res.body, body, `${p} byte for byte`);
        assert.match(String(res.headers['cache-status']), /hit.*detail=offline/);
      }
      assert.equal((await viaProxy(proxy.port, origin.url + '/gz')).headers['content-encoding'], 'gzip');
    } finally {
      await proxy.stop();
      origin = await startShop(origin.port);
    }
  });

  test('a recording of GET, POST, binary and chunked traffic is replayed with the origin stopped; misses get a readable 504', async () => {
    const rec = path.join(dir, 'session.har');
    const proxy = await startCliProxy(['--memory-only', '--record', rec]);
    const sent = async (port: number) => ({
      text: (await viaProxy(port, origin.url + '/text')).text,
      again: (await viaProxy(port, origin.url + '/text')).text,
      bin: (await viaProxy(port, origin.url + '/bin')).body,
      chunked: (await viaProxy(port, origin.url + '/chunked')).text,
      post1: (await viaProxy(port, origin.url + '/orders', { method: 'POST', body: 'item=1', headers: { 'content-type': 'application/x-www-form-urlencoded' } })),
      post2: (await viaProxy(port, origin.url + '/orders', { method: 'POST', body: 'item=1', headers: { 'content-type': 'application/x-www-form-urlencoded' } })),
      other: (await viaProxy(port, origin.url + '/orders', { method: 'POST', body: Buffer.from([1, 2, 3, 250]), headers: { 'content-type': 'application/octet-stream' } })),
      missing: (await viaProxy(port, origin.url + '/missing')).status,
    });
    let live;
    try {
      live = await sent(proxy.port);
    } finally {
      assert.equal(await proxy.stop(), 0);
    }
    assert.match(proxy.output(), /info  recording every exchange to .*session\.har/);
    assert.match(proxy.output(), /info  recording stopped: 8 entries in .*session\.har/);
    const har = readHar(rec);
    assert.deepEqual(harSchemaErrors(har), []);
    assert.equal(har.log.entries.length, 8, 'every exchange, cached (the second /text was a hit) or not');
    assert.match(String(har.log.entries[1]._cachingProxy?.cacheStatus), /^hit/);
    assert.equal(har.log.entries[4].request.postData?.text, 'item=1');
    assert.equal(har.log.entries[6]._cachingProxy?.requestBodyBase64, Buffer.from([1, 2, 3, 250]).toString('base64'));

    await origin.close();
    const replay = await startCliProxy(['--memory-only', '--policy', 'replay', '--replay', rec, '--quiet']);
    try {
      const again = await sent(replay.port);
      assert.equal(again.text, live.text);
      assert.equal(again.again, live.again);
      assert.deepEqual(again.bin, BINARY);
      assert.equal(again.chunked, CHUNKED.join(''));
      assert.equal(again.post1.status, 201);
      assert.equal(JSON.parse(again.post1.text).order, 1, 'the first matching entry first');
      assert.equal(JSON.parse(again.post2.text).order, 2, 'then the next unused one');
      assert.equal(again.other.text, live.other.text, 'a binary body matches by its digest');
      assert.equal(again.missing, 404, 'a recorded 404 is replayed as a 404');
      const third = await viaProxy(replay.port, origin.url + '/orders', { method: 'POST', body: 'item=1' });
      assert.equal(JSON.parse(third.text).order, 2, 'past the last match, the last one again');
      const miss = await viaProxy(replay.port, origin.url + '/orders', { method: 'POST', body: 'item=2' });
      assert.equal(miss.status, 504);
      assert.match(miss.text, /replay: no recorded exchange in .*session\.har matches POST http:\/\/127\.0\.0\.1:\d+\/orders with this request body \(6 bytes/);
      const never = await viaProxy(replay.port, origin.url + '/never-seen');
      assert.equal(never.status, 504);
    } finally {
      await replay.stop();
    }
    origin = await startShop(origin.port);
    const forward = await startCliProxy(['--memory-only', '--policy', 'replay', '--replay', rec, '--replay-miss', 'forward', '--quiet']);
    try {
      const res = await viaProxy(forward.port, origin.url + '/data.json?page=2');
      assert.equal(res.text, '{"page":2}', '--replay-miss forward asks the origin');
      assert.match(String(res.headers['cache-status']), /detail=replay-miss/);
      const posted = await viaProxy(forward.port, origin.url + '/orders', { method: 'POST', body: 'item=9' });
      assert.equal(JSON.parse(posted.text).received, 'item=9', 'the request body is forwarded');
    } finally {
      await forward.stop();
    }
  });

  test('recordings redact credentials by default; --no-redact keeps them', async () => {
    const secrets = { authorization: 'Bearer abc.def', cookie: 'sid=s3cr3t', 'x-api-key': 'key-42', 'x-auth-token': 'tok-7', 'x-client-secret': 'shh' };
    for (const redact of [true, false]) {
      const rec = path.join(dir, `redact-${redact}.har`);
      const proxy = await startCliProxy(['--memory-only', '--record', rec, '--quiet', ...(redact ? [] : ['--no-redact'])]);
      try {
        await viaProxy(proxy.port, origin.url + '/session', { headers: secrets });
      } finally {
        await proxy.stop();
      }
      const text = readFileSync(rec, 'utf8');
      const entry = (JSON.parse(text) as HarDoc).log.entries[0];
      for (const [name, value] of Object.entries(secrets)) {
        assert.equal(header(entry.request.headers, name), redact ? '[redacted by caching-proxy]' : value, name);
      }
      assert.equal(header(entry.response.headers, 'set-cookie'), redact ? '[redacted by caching-proxy]' : 'sid=s3cr3t; HttpOnly');
      if (redact) assert.doesNotMatch(text, /abc\.def|s3cr3t|key-42|tok-7|shh/);
      assert.equal(header(entry.request.headers, 'accept') ?? header(entry.request.headers, 'host'), new URL(origin.url).host, 'other fields are kept');
    }
  });

  test('a malformed or truncated HAR: a precise error naming entry and field, exit 2, and the cache unchanged', async () => {
    const cacheDir = path.join(dir, 'imported');
    const before = listing(cacheDir);
    const good = readFileSync(exported, 'utf8');
    const doc = JSON.parse(good) as HarDoc;
    (doc.log.entries[2].response as unknown as Record<string, unknown>).status = '200';
    const bad = path.join(dir, 'bad.har');
    writeFileSync(bad, JSON.stringify(doc));
    const r = await runCli(['import-har', bad, '--cache-dir', cacheDir]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /bad\.har: log\.entries\[2\]\.response\.status \(GET http:\/\/127\.0\.0\.1:\d+\/\S+\): "200" is not a status code/);
    assert.match(r.stderr, /nothing was imported/);

    const cut = path.join(dir, 'cut.har');
    writeFileSync(cut, good.slice(0, Math.floor(good.length / 2)));
    const t = await runCli(['import-har', cut, '--cache-dir', cacheDir]);
    assert.equal(t.code, 2);
    assert.match(t.stderr, /cut\.har: not valid JSON: the file ends early, at line \d+, column \d+ \(truncated\?\)/);

    const notHar = path.join(dir, 'not.har');
    writeFileSync(notHar, '{"log":{"entries":[{"request":{"method":"GET","url":"/relative"},"response":{"status":200,"content":{}}}]}}');
    const n = await runCli(['import-har', notHar, '--cache-dir', cacheDir]);
    assert.equal(n.code, 2);
    assert.match(n.stderr, /log\.entries\[0\]\.request\.url \(GET \/relative\): "\/relative" is not an absolute URL/);
    assert.deepEqual(listing(cacheDir), before, 'not one file of the cache changed');
  });

  test('bodies over --record-max-body-mb are cut and say so; a cut request body still replays by its digest, a cut response does not', async () => {
    const rec = path.join(dir, 'limits.har');
    const big = 'z'.repeat(5000);
    const proxy = await startCliProxy(['--memory-only', '--record', rec, '--record-max-body-mb', '0.002', '--quiet']);
    try {
      assert.equal((await viaProxy(proxy.port, origin.url + '/orders', { method: 'POST', body: big })).status, 201);
      assert.equal((await viaProxy(proxy.port, origin.url + '/bin')).body.length, BINARY.length);
      assert.equal((await viaProxy(proxy.port, origin.url + '/orders', { method: 'POST', body: 'small' })).status, 201);
    } finally {
      await proxy.stop();
    }
    const har = readHar(rec);
    assert.deepEqual(harSchemaErrors(har), []);
    const [post, , small] = har.log.entries;
    assert.equal(post._cachingProxy?.requestBodyTruncated, true);
    assert.ok((post.request.postData?.text ?? '').length < big.length, 'over the limit: the body is cut');
    assert.match(String(post._cachingProxy?.requestBodySha256), /^[0-9a-f]{64}$/);
    // The 2 KiB limit cuts the 5,000-byte JSON answer of the big POST, not the 300-byte binary.
    assert.equal(post._cachingProxy?.responseBodyTruncated, true);
    assert.equal(small._cachingProxy?.requestBodyTruncated, undefined);

    const imported = await runCli(['import-har', rec, '--cache-dir', path.join(dir, 'limits-cache')]);
    assert.match(imported.stdout, /1 of 3 entries stored/);
    const replay = await startCliProxy(['--memory-only', '--policy', 'replay', '--replay', rec, '--quiet']);
    try {
      const again = await viaProxy(replay.port, origin.url + '/orders', { method: 'POST', body: big });
      assert.equal(again.status, 502, 'matched by the digest of the whole body, but its response was cut');
      assert.match(again.text, /cannot be replayed: the body was cut when it was recorded/);
      assert.equal(JSON.parse((await viaProxy(replay.port, origin.url + '/orders', { method: 'POST', body: 'small' })).text).received, 'small');
    } finally {
      await replay.stop();
    }
  });

  test('--record on a recording of ours continues it; any other existing file is refused, untouched', async () => {
    const rec = path.join(dir, 'continued.har');
    for (const p of ['/text', '/bin']) {
      const proxy = await startCliProxy(['--memory-only', '--record', rec, '--quiet']);
      try {
        await viaProxy(proxy.port, origin.url + p);
      } finally {
        await proxy.stop();
      }
    }
    assert.deepEqual(readHar(rec).log.entries.map((e) => new URL(e.request.url).pathname), ['/text', '/bin']);
    assert.deepEqual(harSchemaErrors(readHar(rec)), []);

    const other = path.join(dir, 'notes.txt');
    writeFileSync(other, 'my notes, not a HAR file\n');
    const r = await runCli(['--port', '0', '--memory-only', '--record', other]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /cannot start: .*notes\.txt already exists and is not a recording of caching-proxy to continue; choose a new file/);
    assert.equal(readFileSync(other, 'utf8'), 'my notes, not a HAR file\n');
  });

  test('a recording started and stopped on the running proxy survives a live settings change in between', async () => {
    const p = await startTestProxy({});
    const rec = path.join(dir, 'live.har');
    try {
      const state = await p.proxy.startRecording(rec);
      assert.deepEqual(state, { file: rec, entries: 0 });
      await viaProxy(p.port, origin.url + '/text');
      await p.proxy.update({ ...p.proxy.config, cache: { ...p.proxy.config.cache, ttl: 5 } });
      await viaProxy(p.port, origin.url + '/bin');
      assert.deepEqual(await p.proxy.stopRecording(), { file: rec, entries: 2 });
      await viaProxy(p.port, origin.url + '/chunked');
    } finally {
      await p.close();
    }
    assert.deepEqual(readHar(rec).log.entries.map((e) => new URL(e.request.url).pathname), ['/text', '/bin']);
  });

  test('a recording cut by SIGKILL mid-traffic is still a valid HAR that imports', async () => {
    const rec = path.join(dir, 'killed.har');
    const proxy: CliProxy = await startCliProxy(['--memory-only', '--record', rec, '--quiet']);
    const agent = new http.Agent({ keepAlive: true, maxSockets: 8 });
    let stop = false;
    const traffic = Array.from({ length: 8 }, async (_, i) => {
      for (let n = 0; !stop && n < 10_000; n++) {
        await viaProxy(proxy.port, `${origin.url}/${n % 2 ? 'bin' : 'text'}?c=${i}-${n}`, { agent }).catch(() => {});
      }
    });
    await waitFor(() => readFileSync(rec, 'utf8').length > 50_000, 'the recording to grow', 20_000);
    proxy.child.kill('SIGKILL');
    await proxy.exited;
    stop = true;
    await Promise.all(traffic);
    agent.destroy();
    const har = readHar(rec);
    assert.ok(har.log.entries.length > 20, `${har.log.entries.length} entries survived`);
    assert.deepEqual(harSchemaErrors(har), []);
    const r = await runCli(['import-har', rec, '--cache-dir', path.join(dir, 'from-killed')]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`of ${har.log.entries.length} entries stored`));
  });
});

/** Every file under a directory with its size and mtime. */
function listing(root: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else out.push(`${path.relative(root, p)} ${readFileSync(p).length}`);
    }
  };
  walk(root);
  return out.sort();
}


describe('HAR: intercepted HTTPS', () => {
  test('exchanges of an intercepted host are recorded with their https:// URLs; plain tunnels pass unrecorded', async () => {
    const testCa = new TestCa();
    const origin = await startHttpsOrigin(testCa.leaf('DNS:localhost,IP:127.0.0.1'), (req, res) => {
      res.writeHead(200, { 'cache-control': 'max-age=300', 'content-type': 'text/plain' });
      res.end(`secure ${req.url}`);
    });
    const dir = tmp();
    const rec = path.join(dir, 'https.har');
    const caDir = path.join(dir, 'ca');
    const p = await startTestProxy({ https: { intercept: ['localhost'], caDir, upstreamCa: testCa.certPath }, har: { record: rec } });
    try {
      const seen = await curl(['-s', '--cacert', path.join(caDir, 'ca.pem'), '-x', p.url, `https://localhost:${origin.port}/secret-page`]);
      assert.equal(seen.stdout, 'secure /secret-page', seen.stderr);
      // 127.0.0.1 is not intercepted: a tunnel, encrypted end to end.
      const tunnelled = await curl(['-s', '--cacert', testCa.certPath, '-x', p.url, `https://127.0.0.1:${origin.port}/tunnelled`]);
      assert.equal(tunnelled.stdout, 'secure /tunnelled', tunnelled.stderr);
    } finally {
      await p.close();
      await origin.close();
    }
    const har = readHar(rec);
    assert.deepEqual(harSchemaErrors(har), []);
    assert.deepEqual(
      har.log.entries.map((e) => [e.request.url, e.response.content.text]),
      [[`https://localhost:${origin.port}/secret-page`, 'secure /secret-page']],
    );
  });
});
