import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { keptBody } from '../../src/cache/store/records';
import { startOrigin, startTestProxy, viaProxy, type TestOrigin, type TestProxy } from '../helpers/net';

/**
 * A small body kept in the memory tier must hold only its own bytes. Node cuts buffers under
 * 4 KiB (Buffer.concat, Buffer.allocUnsafe) from a shared 8 KiB pool; a long-lived entry holding
 * such a slice pins the whole slab, so a cache of small bodies would take several times the
 * memory its budget counts. What a user sees of it is RSS; what the test can see is the size of
 * the memory a kept body's bytes live in.
 */

const SIZES = [1, 700, 1024, 3000, 4095];

function bodyFor(size: number): Buffer {
  return Buffer.alloc(size, size % 251);
}

/** The body size a test URL asks the origin for. */
function sizeOf(url: string): number {
  return Number(new URL(url, 'http://o').searchParams.get('size'));
}

async function smallOrigin(): Promise<TestOrigin> {
  return startOrigin((req, res) => {
    const size = sizeOf(req.url ?? '/');
    const body = bodyFor(size);
    const headers: Record<string, string> = { 'Cache-Control': 'max-age=3600', 'Content-Type': 'application/octet-stream' };
    // Both framings: a known length, and chunks whose total the proxy learns at the end.
    if (new URL(req.url ?? '/', 'http://o').pathname === '/chunked') {
      res.writeHead(200, headers);
      res.write(body.subarray(0, size >> 1));
      res.end(body.subarray(size >> 1));
    } else {
      res.writeHead(200, { ...headers, 'Content-Length': String(size) });
      res.end(body);
    }
  });
}

/** Asks for every small body twice (a miss, then a hit) and checks what the cache keeps for each. */
async function checkKeptBodies(proxy: TestProxy, origin: TestOrigin): Promise<void> {
  const urls = SIZES.flatMap((size) => [`${origin.url}/fixed?size=${size}`, `${origin.url}/chunked?size=${size}`]);
  for (const url of urls) {
    for (let i = 0; i < 2; i++) {
      const r = await viaProxy(proxy.port, url);
      assert.equal(r.status, 200, url);
      assert.ok(r.body.equals(bodyFor(sizeOf(url))), url);
    }
  }
  const entries = await proxy.proxy.cache.list();
  assert.equal(entries.length, urls.length, `entries: ${entries.map((e) => e.url).join(', ')}`);
  for (const summary of entries) {
    const stored = await proxy.proxy.cache.read(summary.key);
    assert.ok(stored, summary.url);
    const size = sizeOf(summary.url);
    assert.equal(stored.body.length, size, summary.url);
    assert.ok(
      stored.body.buffer.byteLength <= size + 512,
      `${summary.url}: a ${size}-byte body is kept in ${stored.body.buffer.byteLength} bytes of memory`,
    );
  }
}

test('small bodies: a stored body under 4 KiB is kept in memory of its own size, not a slice of a shared pool', async () => {
  const origin = await smallOrigin();
  const proxy = await startTestProxy();
  try {
    await checkKeptBodies(proxy, origin);
  } finally {
    await proxy.close();
    await origin.close();
  }
});

test('small bodies: with a disk tier, bodies kept in memory after storing and after loading from disk own their memory', async () => {
  const origin = await smallOrigin();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cp-small-'));
  try {
    let proxy = await startTestProxy({ cache: { dir } });
    try {
      await checkKeptBodies(proxy, origin);
    } finally {
      await proxy.close();
    }
    const served = origin.requests.length;
    // After a restart each entry is read back from its pack record into the memory tier.
    proxy = await startTestProxy({ cache: { dir } });
    try {
      await checkKeptBodies(proxy, origin);
      assert.equal(origin.requests.length, served, 'every request after the restart was a hit from the disk tier');
    } finally {
      await proxy.close();
    }
  } finally {
    await origin.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('small bodies: what the cache keeps of a body read back is a buffer of its own size, copied only when it is not one already', () => {
  const record = Buffer.alloc(4096, 7);
  const view = record.subarray(100, 1124);
  const keptView = keptBody(view);
  assert.notEqual(keptView.buffer, record.buffer, 'a view into a record read is copied out of it');
  assert.equal(keptView.buffer.byteLength, 1024);
  assert.ok(keptView.equals(view));

  const pooled = Buffer.from('a pooled body');
  assert.ok(pooled.buffer.byteLength > pooled.length, 'Node cut this buffer from its shared pool');
  assert.equal(keptBody(pooled).buffer.byteLength, pooled.length, 'a slice of the pool is copied');

  const own = Buffer.allocUnsafeSlow(20_000);
  assert.equal(keptBody(own), own, 'a buffer that is all of its memory (a body file read whole) is kept as it is');
});
