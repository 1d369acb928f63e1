import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';
import { RecentReads } from '../../src/cache/recentReads';
import { hashKey } from '../../src/cache/store/entryStore';
import { startOrigin, startTestProxy, viaProxy } from '../helpers/net';

const BODY_BYTES = 1000;

function bodyOf(url: string): Buffer {
  return Buffer.alloc(BODY_BYTES, url.length % 251);
}

test('cold hits: an entry read back from disk is answered at once but kept in memory only from its second read, so entries asked for once leave the memory tier as it was', async () => {
  const origin = await startOrigin((req, res) => {
    res.writeHead(200, { 'Cache-Control': 'max-age=3600', 'Content-Type': 'application/octet-stream', 'Content-Length': String(BODY_BYTES) });
    res.end(bodyOf(req.url ?? '/'));
  });
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cp-recent-'));
  const urls = Array.from({ length: 20 }, (_, i) => `${origin.url}/tarball-${i}.tgz`);
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  try {
    let proxy = await startTestProxy({ cache: { dir } });
    try {
      for (const url of urls) assert.equal((await viaProxy(proxy.port, url)).status, 200);
    } finally {
      await proxy.close();
    }
    const fetched = origin.requests.length;
    assert.equal(fetched, urls.length);

    proxy = await startTestProxy({ cache: { dir } });
    try {
      const memory = () => proxy.proxy.cache.stats().memoryBytes;
      // Once the index is in (until then a lookup takes the ordinary path, which keeps what it reads).
      assert.equal((await proxy.proxy.cache.list()).length, urls.length);
      assert.equal(memory(), 0, 'nothing is in memory right after the start');
      // The quick path's requests: kept-alive, plain GETs.
      for (const url of urls) {
        const r = await viaProxy(proxy.port, url, { agent });
        assert.equal(r.status, 200, url);
        assert.match(String(r.headers['cache-status']), /; hit/, `${url} is a hit from the disk tier`);
        assert.ok(r.body.equals(bodyOf(new URL(url).pathname)), url);
      }
      assert.equal(origin.requests.length, fetched, 'no request reached the origin');
      assert.equal(memory(), 0, `entries asked for once each left ${memory()} bytes in the memory tier`);

      const again = await viaProxy(proxy.port, urls[3], { agent });
      assert.match(String(again.headers['cache-status']), /; hit/);
      assert.ok(again.body.equals(bodyOf(new URL(urls[3]).pathname)));
      const kept = memory();
      assert.ok(kept >= BODY_BYTES, `the entry asked for a second time is kept in memory (memory tier: ${kept} bytes)`);
      const third = await viaProxy(proxy.port, urls[3], { agent });
      assert.match(String(third.headers['cache-status']), /; hit/);
      assert.equal(memory(), kept, 'a third hit is answered from memory and keeps nothing more');
      assert.equal(origin.requests.length, fetched, 'no request reached the origin');
    } finally {
      agent.destroy();
      await proxy.close();
    }
  } finally {
    await origin.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('cold hits: the table of recent reads says "again" for a hash read before, once, and forgets it when another read takes its slot', () => {
  const reads = new RecentReads();
  const a = hashKey('GET http://registry.test/a.tgz');
  const b = hashKey('GET http://registry.test/b.tgz');
  assert.equal(reads.askedAgain(a), false, 'a first read');
  assert.equal(reads.askedAgain(b), false);
  assert.equal(reads.askedAgain(a), true, 'a second read');
  assert.equal(reads.askedAgain(a), false, 'counted again from the start once kept');
  // The slot comes from the first eight hex digits, the fingerprint from the next eight.
  const clash = a.slice(0, 8) + (a[8] === 'f' ? 'e' : 'f') + a.slice(9);
  assert.equal(reads.askedAgain(clash), false, 'another entry read into the same slot');
  assert.equal(reads.askedAgain(a), false, 'the first entry was forgotten');
});
