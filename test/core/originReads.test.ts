import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import * as http from 'node:http';
import * as net from 'node:net';
import type { AddressInfo } from 'node:net';
import { closeServer, waitFor } from '../helpers/net';
import { OriginClient } from '../../src/core/origin';
import { OriginHttpAgent, parserCopiesBodies } from '../../src/core/originReads';
import { nodeHttpParser, OriginConnection } from '../../src/core/quick/originConnection';

const MiB = 1024 * 1024;

/** `total` bytes that differ from one 64 KiB block to the next (a reordered or overwritten block shows). */
function body(total: number, seed: number): Buffer {
  const b = Buffer.allocUnsafe(total + 4);
  for (let i = 0; i < total; i += 4) b.writeUInt32LE(((i >>> 16) * 2654435761 + seed + i) >>> 0, i);
  return b.subarray(0, total);
}

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

async function origin(bodies: Map<string, Buffer>): Promise<{ server: http.Server; url: string }> {
  const server = http.createServer((req, res) => {
    const b = bodies.get(req.url ?? '') ?? Buffer.from('?');
    res.writeHead(200, { 'Content-Length': b.length });
    res.end(b);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
}

/**
 * Reads a response body as the cache does ('data' events, each chunk as the socket's read gave
 * it), pausing for a turn of the event loop after each (a consumer a little behind its origin).
 */
function readSlowly(res: http.IncomingMessage): Promise<{ whole: Buffer; largest: number }> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let largest = 0;
    res.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
      largest = Math.max(largest, chunk.length);
      res.pause();
      setImmediate(() => res.resume());
    });
    res.once('end', () => resolve({ whole: Buffer.concat(chunks), largest }));
    res.once('error', reject);
  });
}

test('Node’s HTTP parser copies bodies out of its input on this runtime; a parser that hands out slices is noticed', () => {
  assert.equal(parserCopiesBodies(), true);
  assert.equal(OriginHttpAgent.sharesReads, true);
  const real = nodeHttpParser()!;
  class SlicingParser {
    [key: number]: unknown;
    initialize(): void {}
    execute(data: Buffer): number {
      (this[real.kOnBody] as (chunk: Buffer) => void)(data.subarray(data.indexOf('\r\n\r\n') + 4));
      return data.length;
    }
    finish(): undefined {
      return undefined;
    }
    close(): void {}
  }
  const slicing = Object.assign(SlicingParser, {
    RESPONSE: real.RESPONSE,
    kOnMessageBegin: real.kOnMessageBegin,
    kOnHeaders: real.kOnHeaders,
    kOnHeadersComplete: real.kOnHeadersComplete,
    kOnBody: real.kOnBody,
    kOnMessageComplete: real.kOnMessageComplete,
    kLenientNone: real.kLenientNone,
  });
  assert.equal(parserCopiesBodies(slicing as unknown as Parameters<typeof parserCopiesBodies>[0]), false);
  assert.equal(parserCopiesBodies(null), false);
});

test('an origin body is read in reads larger than 64 KiB, intact', async () => {
  const big = body(32 * MiB, 1);
  const o = await origin(new Map([['/big', big]]));
  const client = new OriginClient({ upstreamProxy: null, noProxy: [], timeoutSeconds: 30 });
  try {
    const res = await client.fetch({ method: 'GET', url: new URL(`${o.url}/big`), headers: {} });
    const { whole, largest } = await readSlowly(res);
    assert.equal(whole.length, big.length);
    assert.equal(sha(whole), sha(big));
    // Node's own sockets read 64 KiB at a time.
    assert.ok(largest > 64 * 1024, `largest chunk ${largest} bytes`);
  } finally {
    client.close();
    await closeServer(o.server);
  }
});

test('bodies read at the same time over different connections (one shared read buffer) arrive intact', async () => {
  const bodies = new Map([
    ['/a', body(8 * MiB, 2)],
    ['/b', body(8 * MiB + 12345, 3)],
    ['/c', body(3 * MiB + 1, 4)],
  ]);
  const o = await origin(bodies);
  const client = new OriginClient({ upstreamProxy: null, noProxy: [], timeoutSeconds: 30 });
  try {
    for (let round = 0; round < 2; round++) {
      const got = await Promise.all(
        [...bodies.keys()].map(async (path) => {
          const res = await client.fetch({ method: 'GET', url: new URL(`${o.url}${path}`), headers: {} });
          return [path, (await readSlowly(res)).whole] as const;
        }),
      );
      for (const [path, whole] of got) assert.equal(sha(whole), sha(bodies.get(path)!), path);
    }
  } finally {
    client.close();
    await closeServer(o.server);
  }
});

test('a pooled origin connection that sends bytes while idle is closed, and the next request takes a new one', async () => {
  const sockets: net.Socket[] = [];
  const server = net.createServer((socket) => {
    sockets.push(socket);
    socket.once('data', () => socket.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\nok'));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/x`;
  const client = new OriginClient({ upstreamProxy: null, noProxy: [], timeoutSeconds: 30 });
  try {
    const first = await client.fetch({ method: 'GET', url: new URL(url), headers: {} });
    assert.equal((await readSlowly(first)).whole.toString(), 'ok');
    let closed = false;
    sockets[0].once('close', () => (closed = true));
    // Give the response's end a turn to put the connection back into the pool, then misbehave.
    await new Promise((r) => setImmediate(r));
    sockets[0].write('HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nstray');
    await waitFor(() => closed, 'the proxy closing the connection that sent stray bytes');
    const second = await client.fetch({ method: 'GET', url: new URL(url), headers: {} });
    assert.equal((await readSlowly(second)).whole.toString(), 'ok');
    assert.equal(sockets.length, 2);
  } finally {
    client.close();
    for (const s of sockets) s.destroy();
    await new Promise<void>((r) => server.close(() => r()));
  }
});

test('the quick pass-through’s origin connections read more than 64 KiB at a time too, the body intact', async () => {
  const big = body(16 * MiB + 7, 5);
  const o = await origin(new Map([['/big', big]]));
  const port = Number(new URL(o.url).port);
  const connection = new OriginConnection('127.0.0.1', port, { timeoutMs: 30_000, keepAliveMs: 5_000, keepAliveMaxMs: 5_000, maxHeaderBytes: 0 }, () => {});
  try {
    const got = await new Promise<{ whole: Buffer; largest: number; status: number }>((resolve, reject) => {
      const chunks: Buffer[] = [];
      let largest = 0;
      let status = 0;
      connection.request('GET', `GET /big HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n\r\n`, {
        onHeaders: (s) => (status = s),
        onData: (chunk) => {
          chunks.push(Buffer.from(chunk));
          largest = Math.max(largest, chunk.length);
          // A client a little behind: stop reading until the next turn of the event loop.
          setImmediate(() => connection.resume());
          return false;
        },
        onReadEnd: () => {},
        onComplete: () => resolve({ whole: Buffer.concat(chunks), largest, status }),
        onError: reject,
      });
    });
    assert.equal(got.status, 200);
    assert.equal(sha(got.whole), sha(big));
    assert.ok(got.largest > 64 * 1024, `largest chunk ${got.largest} bytes`);
  } finally {
    connection.destroy();
    await closeServer(o.server);
  }
});
