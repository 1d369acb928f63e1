import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';
import { closeServer, sleep, startTestProxy, viaProxy, waitFor, type TestProxy } from '../helpers/net';
import type { AddressInfo } from 'node:net';

// Bodies streamed from their files on disk go through 1 MiB slabs reused from read to read and
// from body to body (src/core/fileBody.ts). Each body here is different at every byte and spans
// several slabs, so a slab overwritten while still being sent, or shared by two answers, shows.

const MiB = 1024 * 1024;

/** A body that differs from every other at every offset: AES-CTR's key stream for a key made of its name. */
function bodyOf(name: string, size: number): Buffer {
  const key = crypto.createHash('sha256').update(name).digest().subarray(0, 16);
  return crypto.createCipheriv('aes-128-ctr', key, Buffer.alloc(16)).update(Buffer.alloc(size));
}

async function startBodies(): Promise<{ url: string; close(): Promise<void> }> {
  const server = http.createServer((req, res) => {
    const u = new URL(req.url ?? '/', 'http://origin');
    const size = Number(u.searchParams.get('size') ?? 5 * MiB + 12345);
    const body = bodyOf(u.pathname, size);
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': size, 'cache-control': 'max-age=600' });
    res.end(body);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, close: () => closeServer(server) };
}

/**
 * A GET through the proxy read slowly: paused for `firstMs` after its first read (long enough
 * for the socket buffers to fill, so the proxy's writes wait), then `pauseMs` after each of the next `pauses`.
 */
function slowGet(proxyPort: number, url: string, pauseMs: number, pauses: number, firstMs = pauseMs): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port: proxyPort, path: url, headers: { host: new URL(url).host }, agent: false });
    req.on('response', (res) => {
      const chunks: Buffer[] = [];
      let left = pauses + 1;
      res.on('data', (c: Buffer) => {
        chunks.push(c);
        if (left-- > 0) {
          res.pause();
          setTimeout(() => res.resume(), left === pauses ? firstMs : pauseMs);
        }
      });
      res.on('end', () => resolve(Buffer.concat(chunks)));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

async function withDiskProxy(input: Parameters<typeof startTestProxy>[0], fn: (origin: string, proxy: TestProxy) => Promise<void>): Promise<void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cp-diskbodies-'));
  const origin = await startBodies();
  const proxy = await startTestProxy({ ...input, cache: { dir, maxMemoryMB: 1, ...(input?.cache ?? {}) } });
  try {
    await fn(origin.url, proxy);
  } finally {
    await proxy.close();
    await origin.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

const sha = (b: Buffer) => crypto.createHash('sha256').update(b).digest('hex');
const openFds = () => fs.readdirSync('/proc/self/fd').length;

test('disk hits: four large bodies read at once, two of them slowly, each arrives byte for byte; ranges across slab edges too', () =>
  withDiskProxy({}, async (origin, p) => {
    const names = ['/a.bin', '/b.bin', '/c.bin', '/d.bin'];
    const size = 5 * MiB + 12345;
    const sizeOf = (name: string) => (name === '/d.bin' ? 24 * MiB + 3 : size);
    const urlOf = (name: string) => `${origin}${name}?size=${sizeOf(name)}`;
    for (const name of names) assert.equal(sha((await viaProxy(p.port, urlOf(name))).body), sha(bodyOf(name, sizeOf(name))), `${name}: the miss`);
    const hits = await Promise.all(names.map((name, i) => (i % 2 ? slowGet(p.port, urlOf(name), 20, 8, 500) : viaProxy(p.port, urlOf(name)).then((r) => r.body))));
    hits.forEach((body, i) => assert.equal(sha(body), sha(bodyOf(names[i], sizeOf(names[i]))), `${names[i]}: the hit`));
    const whole = bodyOf('/a.bin', size);
    for (const [start, end] of [
      [MiB - 7, 3 * MiB + 5],
      [0, MiB - 1],
      [MiB, 2 * MiB],
      [size - 10, size - 1],
    ]) {
      const r = await viaProxy(p.port, urlOf('/a.bin'), { headers: { range: `bytes=${start}-${end}` } });
      assert.equal(r.status, 206);
      assert.match(String(r.headers['cache-status']), /; hit/);
      assert.ok(r.body.equals(whole.subarray(start, end + 1)), `bytes ${start}-${end}`);
    }
  }));

test('disk hits: clients that leave mid-body leave no open file behind, and the next answers are whole', () =>
  withDiskProxy({}, async (origin, p) => {
    const size = 5 * MiB + 12345;
    await viaProxy(p.port, origin + '/left.bin');
    const before = openFds();
    for (let i = 0; i < 20; i++) {
      await new Promise<void>((resolve) => {
        const req = http.request({ host: '127.0.0.1', port: p.port, path: origin + '/left.bin', headers: { host: new URL(origin).host }, agent: false });
        req.on('response', (res) => res.once('data', () => (req.destroy(), resolve())));
        req.on('error', () => resolve());
        req.end();
      });
    }
    await waitFor(() => openFds() <= before, `the proxy's open files back to ${before} (now ${openFds()})`);
    const again = await Promise.all([viaProxy(p.port, origin + '/left.bin'), slowGet(p.port, origin + '/left.bin', 20, 4)]);
    assert.equal(sha(again[0].body), sha(bodyOf('/left.bin', size)));
    assert.equal(sha(again[1]), sha(bodyOf('/left.bin', size)));
  }));

test('disk hits while recording: the HAR file holds each large body as it was sent, not the slabs reused under it', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cp-diskbodies-har-'));
  const record = path.join(dir, 'rec.har');
  try {
    await withDiskProxy({ har: { record, recordMaxBodyMB: 16 } }, async (origin, p) => {
      await viaProxy(p.port, origin + '/rec1.bin');
      await viaProxy(p.port, origin + '/rec2.bin');
      const hits = await Promise.all([viaProxy(p.port, origin + '/rec1.bin'), viaProxy(p.port, origin + '/rec2.bin')]);
      for (const h of hits) assert.match(String(h.headers['cache-status']), /; hit/);
      await sleep(50);
    });
    const har = JSON.parse(fs.readFileSync(record, 'utf8')) as { log: { entries: Array<{ request: { url: string }; response: { content: { text?: string; encoding?: string } }; _cachingProxy?: { cacheStatus?: string } }> } };
    const recordedHits = har.log.entries.filter((e) => /^hit/.test(String(e._cachingProxy?.cacheStatus)));
    assert.equal(recordedHits.length, 2);
    for (const e of recordedHits) {
      const name = new URL(e.request.url).pathname;
      assert.equal(e.response.content.encoding, 'base64');
      assert.equal(sha(Buffer.from(e.response.content.text ?? '', 'base64')), sha(bodyOf(name, 5 * MiB + 12345)), `${name} as recorded`);
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
