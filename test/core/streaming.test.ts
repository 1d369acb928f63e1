import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as http from 'node:http';
import { Readable } from 'node:stream';
import { closeServer, sleep, startTestProxy, waitFor } from '../helpers/net';
import { peakRss, resetPeakRss, startCliProxy, type CliProxy } from '../helpers/processes';
import type { AddressInfo } from 'node:net';

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;
/** Growth that still proves a body is streamed, not held: an eighth of it. */
const FLAT = 128 * MiB;

/** A readable producing `total` bytes of a repeating pattern, 64 KiB at a time, without holding them. */
function patternStream(total: number): Readable {
  const chunk = Buffer.alloc(64 * 1024, 'abcdefghijklmnopqrstuvwxyz0123456789');
  let sent = 0;
  return new Readable({
    read() {
      if (sent >= total) return this.push(null);
      const n = Math.min(chunk.length, total - sent);
      sent += n;
      this.push(n === chunk.length ? chunk : chunk.subarray(0, n));
    },
  });
}

describe('streaming through the real CLI process', () => {
  let origin: http.Server;
  let originPort: number;
  let proxy: CliProxy;
  let uploaded = 0;

  before(async () => {
    origin = http.createServer((req, res) => {
      if (req.url === '/download') {
        res.writeHead(200, { 'Content-Type': 'application/octet-stream', 'Content-Length': GiB, 'Cache-Control': 'no-store' });
        patternStream(GiB).pipe(res);
        return;
      }
      if (req.url === '/upload') {
        uploaded = 0;
        req.on('data', (c: Buffer) => (uploaded += c.length));
        req.on('end', () => res.end(String(uploaded)));
        return;
      }
      res.end('?');
    });
    await new Promise<void>((r) => origin.listen(0, '127.0.0.1', r));
    originPort = (origin.address() as AddressInfo).port;
    proxy = await startCliProxy(['--memory-only', '--policy', 'off', '--quiet']);
  });
  after(async () => {
    await proxy.stop();
    await closeServer(origin);
  });

  test('a 1 GiB download passes through with flat proxy memory', async () => {
    resetPeakRss(proxy.child.pid!);
    const before = peakRss(proxy.child.pid!);
    const received = await new Promise<number>((resolve, reject) => {
      http.get({ host: '127.0.0.1', port: proxy.port, path: `http://127.0.0.1:${originPort}/download` }, (res) => {
        let n = 0;
        res.on('data', (c: Buffer) => (n += c.length));
        res.on('end', () => resolve(n));
        res.on('error', reject);
      }).on('error', reject);
    });
    assert.equal(received, GiB);
    const growth = peakRss(proxy.child.pid!) - before;
    // Buffering would grow by ~1 GiB; garbage collection lags on a loaded machine, so allow 128 MiB.
    assert.ok(growth < FLAT, `proxy peak RSS grew by ${(growth / MiB).toFixed(1)} MiB`);
  });

  test('a 1 GiB upload passes through with flat proxy memory', async () => {
    resetPeakRss(proxy.child.pid!);
    const before = peakRss(proxy.child.pid!);
    const answer = await new Promise<string>((resolve, reject) => {
      const req = http.request({ host: '127.0.0.1', port: proxy.port, method: 'PUT', path: `http://127.0.0.1:${originPort}/upload`, headers: { 'Content-Length': GiB } }, (res) => {
        let text = '';
        res.on('data', (c) => (text += c));
        res.on('end', () => resolve(text));
      });
      req.on('error', reject);
      patternStream(GiB).pipe(req);
    });
    assert.equal(answer, String(GiB));
    const growth = peakRss(proxy.child.pid!) - before;
    assert.ok(growth < FLAT, `proxy peak RSS grew by ${(growth / MiB).toFixed(1)} MiB`);
  });
});

describe('backpressure', () => {
  test('a client that stops reading stops the origin read, not the proxy memory', async () => {
    let written = 0;
    let originRes: http.ServerResponse | undefined;
    const origin = http.createServer((_req, res) => {
      originRes = res;
      res.writeHead(200, { 'Content-Type': 'application/octet-stream', 'Cache-Control': 'no-store' });
      const chunk = Buffer.alloc(64 * 1024, 1);
      const pump = () => {
        // Write until the socket says stop; count only what the socket accepted.
        while (written < 512 * MiB) {
          written += chunk.length;
          if (!res.write(chunk)) return void res.once('drain', pump);
        }
        res.end();
      };
      pump();
    });
    await new Promise<void>((r) => origin.listen(0, '127.0.0.1', r));
    const port = (origin.address() as AddressInfo).port;
    const p = await startTestProxy({ cache: { policy: 'off' } });
    try {
      const res = await new Promise<http.IncomingMessage>((resolve, reject) => {
        http.get({ host: '127.0.0.1', port: p.port, path: `http://127.0.0.1:${port}/big` }, resolve).on('error', reject);
      });
      res.pause();
      await waitFor(() => written > 0, 'origin to start writing');
      // Let the pipeline fill up: every buffer on the way (sockets, streams) reaches its limit.
      let last = -1;
      while (written !== last) {
        last = written;
        await sleep(300);
      }
      assert.ok(written < 64 * MiB, `origin wrote ${(written / MiB).toFixed(1)} MiB while the client read nothing`);
      res.destroy();
      await waitFor(() => originRes?.destroyed === true || originRes?.writableEnded === true, 'origin response to be torn down after the client left');
    } finally {
      await p.close();
      await closeServer(origin);
    }
  });
});
