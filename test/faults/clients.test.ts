import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as http from 'node:http';
import * as net from 'node:net';
import { execFileSync, spawn } from 'node:child_process';
import { waitFor, type TestOrigin } from '../helpers/net';
import { openFds, spawnProxy, type ChildProxy } from './lib/child';

/** Clients that misbehave or crowd in: the origin side is cleaned up, the others are still served. */

/** An origin with an endless slow download, an upload sink, and a small and a big page. Records aborts. */
async function busyOrigin(): Promise<TestOrigin & { downloadsAborted: number; uploadsAborted: number; uploadBytes: Map<string, number> }> {
  const stats = { downloadsAborted: 0, uploadsAborted: 0, uploadBytes: new Map<string, number>() };
  const big = Buffer.alloc(32 * 1024 * 1024, 'b');
  const server = http.createServer((req, res) => {
    const path = req.url ?? '';
    if (path.startsWith('/endless')) {
      res.writeHead(200, { 'Content-Type': 'application/octet-stream', 'Cache-Control': 'no-store' });
      const chunk = Buffer.alloc(16 * 1024, 'e');
      const timer = setInterval(() => res.write(chunk), 5);
      res.on('close', () => {
        clearInterval(timer);
        if (!res.writableFinished) stats.downloadsAborted++;
      });
      return;
    }
    if (path.startsWith('/upload')) {
      req.on('data', (c: Buffer) => stats.uploadBytes.set(path, (stats.uploadBytes.get(path) ?? 0) + c.length));
      req.on('close', () => {
        if (!req.complete) stats.uploadsAborted++;
      });
      req.on('end', () => res.end('stored'));
      return;
    }
    if (path.startsWith('/big')) {
      res.writeHead(200, { 'Content-Length': big.length, 'Cache-Control': 'no-store' });
      res.end(big);
      return;
    }
    res.writeHead(200, { 'Content-Type': 'text/plain', 'Cache-Control': 'no-store' });
    res.end('ok');
  });
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as net.AddressInfo).port;
  const origin = Object.assign(stats, {
    server,
    port,
    url: `http://127.0.0.1:${port}`,
    requests: [],
    count: () => 0,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  });
  return origin as unknown as TestOrigin & typeof stats;
}

function rawSocket(port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1', () => resolve(s));
    s.once('error', reject);
  });
}

function closed(s: net.Socket): Promise<void> {
  return new Promise((r) => (s.destroyed ? r() : s.once('close', () => r())));
}

test('a client leaving mid-download or mid-upload aborts the origin request; 200 of each leak nothing', async () => {
  const origin = await busyOrigin();
  const proxy = await spawnProxy(['--memory-only', '--log-level', 'error']);
  try {
    const download = async () => {
      const s = await rawSocket(proxy.port);
      s.write(`GET ${origin.url}/endless HTTP/1.1\r\nHost: 127.0.0.1:${origin.port}\r\n\r\n`);
      await new Promise<void>((r) => s.once('data', () => r()));
      s.destroy();
    };
    let uploads = 0;
    const upload = async () => {
      const s = await rawSocket(proxy.port);
      const path = `/upload/${uploads++}`;
      s.write(`POST ${origin.url}${path} HTTP/1.1\r\nHost: 127.0.0.1:${origin.port}\r\nContent-Length: 10000000\r\n\r\n`);
      s.write(Buffer.alloc(64 * 1024, 'u'));
      await waitFor(() => (origin.uploadBytes.get(path) ?? 0) > 0, 'upload bytes to reach the origin');
      s.destroy();
    };
    await download();
    await waitFor(() => origin.downloadsAborted === 1, 'the origin download to be aborted');
    await upload();
    await waitFor(() => origin.uploadsAborted === 1, 'the origin upload to be aborted');

    const fdsBefore = openFds(proxy.pid);
    for (let i = 0; i < 200; i += 10) await Promise.all(Array.from({ length: 10 }, () => [download(), upload()]).flat());
    await waitFor(() => origin.downloadsAborted === 201 && origin.uploadsAborted === 201, 'every origin request to be aborted', 20_000).catch((err: Error) => {
      throw new Error(`${err.message}: ${origin.downloadsAborted} downloads and ${origin.uploadsAborted} uploads aborted of 201 each`);
    });
    await waitFor(() => openFds(proxy.pid) <= fdsBefore + 5, `proxy fds to return to ${fdsBefore} (now ${openFds(proxy.pid)})`, 10_000);
    assert.ok(proxy.alive());
  } finally {
    await proxy.stop();
    await origin.close();
  }
});

const SLOW_READER = `
import socket, sys, time, select
port, count, request = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3].encode('latin1')
socks = []
for i in range(count):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)
    s.connect(('127.0.0.1', port))
    s.sendall(request)
    socks.append(s)
print('connected', count, flush=True)
open_ = set(range(count))
total = 0
while open_:
    for i in list(open_):
        try:
            b = socks[i].recv(1)
        except OSError:
            b = b''
        if not b:
            open_.discard(i)
            print('closed', i, flush=True)
        else:
            total += 1
    print('bytes', total, flush=True)
    time.sleep(1)
`;

/** Slow readers in a python3 process: each sends `request`, then reads 1 byte per second until the server closes. */
function startSlowReaders(port: number, request: string, count: number) {
  const child = spawn('python3', ['-c', SLOW_READER, String(port), String(count), request], { stdio: ['ignore', 'pipe', 'inherit'] });
  let connected = 0;
  let closedCount = 0;
  let bytes = 0;
  child.stdout.setEncoding('utf8');
  let pending = '';
  child.stdout.on('data', (text: string) => {
    const lines = (pending + text).split('\n');
    pending = lines.pop() ?? '';
    for (const line of lines) {
      const [word, n] = line.split(' ');
      if (word === 'connected') connected = Number(n);
      else if (word === 'closed') closedCount++;
      else if (word === 'bytes') bytes = Number(n);
    }
  });
  return { connected: () => connected, closed: () => closedCount, bytes: () => bytes, stop: () => child.kill() };
}

/** Keep-alive GETs over an agent with one socket per concurrent request. */
function get(agent: http.Agent, proxyPort: number, url: string): Promise<{ status: number; body: string; reused: boolean }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port: proxyPort, path: url, headers: { host: new URL(url).host }, agent });
    req.on('response', (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, reused: req.reusedSocket }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

function hasPython(): boolean {
  try {
    execFileSync('python3', ['-c', 'pass'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

test('1,000 concurrent keep-alive clients are all served while 20 clients read 1 byte per second; idle and head timeouts reclaim the slow ones', { skip: hasPython() ? false : 'needs python3 for the slow readers' }, async () => {
  const origin = await busyOrigin();
  let proxy: ChildProxy | null = null;
  let readers: ReturnType<typeof startSlowReaders> | null = null;
  const timers: NodeJS.Timeout[] = [];
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1000, maxFreeSockets: 1000 });
  try {
    proxy = await spawnProxy(['--memory-only', '--log-level', 'error'], { idleTimeoutSeconds: 8, headersTimeoutSeconds: 2 });
    const port = proxy.port;
    const baselineFds = openFds(proxy.pid);

    // Slow readers: a 32 MB download each, read 1 byte per second through a 2 KB receive buffer
    // (a separate python3 process: Node cannot shrink a socket's receive buffer, and would
    // pull whole 64 KB chunks from the kernel however slowly the application reads).
    const slow = startSlowReaders(port, `GET ${origin.url}/big HTTP/1.1\r\nHost: 127.0.0.1:${origin.port}\r\n\r\n`, 20);
    readers = slow;
    await waitFor(() => slow.connected() === 20, 'the slow readers to connect and start reading', 10_000);
    // Slowloris: a request head dribbled out one byte every 300 ms, never finished.
    const loris: net.Socket[] = [];
    const lorisAnswers: string[] = [];
    for (let i = 0; i < 10; i++) {
      const s = await rawSocket(port);
      s.on('error', () => {});
      let answer = '';
      s.on('data', (c: Buffer) => (answer += c.toString('latin1')));
      s.on('close', () => lorisAnswers.push(answer));
      s.write(`GET ${origin.url}/ok HTTP/1.1\r\nHost: 127.0.0.1:${origin.port}\r\n`);
      timers.push(setInterval(() => !s.destroyed && s.write('X'), 300));
      loris.push(s);
    }
    // Silent: connects and sends nothing.
    const silent = await Promise.all(Array.from({ length: 10 }, () => rawSocket(port)));
    const silentAnswers: string[] = [];
    for (const s of silent) {
      s.on('error', () => {});
      let answer = '';
      s.on('data', (c: Buffer) => (answer += c.toString('latin1')));
      s.on('close', () => silentAnswers.push(answer));
    }

    // 1,000 keep-alive clients, three requests each on the same connection.
    const clients = 1000;
    const results: Array<{ status: number; body: string; reused: boolean }> = [];
    for (let round = 0; round < 3; round++) {
      results.push(...(await Promise.all(Array.from({ length: clients }, (_, c) => get(agent, port, `${origin.url}/small?c=${c}&r=${round}`)))));
    }
    assert.equal(results.length, 3000);
    assert.ok(results.every((r) => r.status === 200 && r.body === 'ok'), 'every keep-alive request was answered by the origin');
    const reused = results.slice(1000).filter((r) => r.reused).length;
    assert.ok(reused >= 1900, `keep-alive connections were reused (${reused} of 2000 later requests)`);
    const sockets = Object.values(agent.sockets).reduce((n, l) => n + (l?.length ?? 0), 0) + Object.values(agent.freeSockets).reduce((n, l) => n + (l?.length ?? 0), 0);
    assert.ok(sockets >= 900, `about 1,000 concurrent connections were open (${sockets})`);
    assert.equal(slow.closed(), 0, 'the slow readers were still connected while the others were served');

    // The timeouts reclaim the misbehaving connections.
    await Promise.all(loris.map(closed));
    assert.ok(lorisAnswers.every((a) => a.startsWith('HTTP/1.1 408 ')), `slowloris clients got 408: ${JSON.stringify(lorisAnswers.slice(0, 2))}`);
    await Promise.all(silent.map(closed));
    assert.ok(silentAnswers.every((a) => a === '' || a.startsWith('HTTP/1.1 408 ')), `silent clients were closed (408 or nothing): ${JSON.stringify(silentAnswers.slice(0, 2))}`);
    agent.destroy();
    // The proxy closes its side of the stalled downloads once no byte moved for idleTimeoutSeconds:
    // its descriptors return to the baseline even though the slow readers, still reading 1 byte per
    // second out of what the kernel already holds for them, have not seen the end yet.
    await waitFor(() => openFds(proxy!.pid) <= baselineFds + 10, `proxy fds back near ${baselineFds} (now ${openFds(proxy!.pid)})`, 45_000);
    assert.ok(slow.bytes() < 20 * 1024 * 1024, 'the slow readers did not get their whole download');
    assert.ok(proxy.alive());
    slow.stop();
    const after = await get(new http.Agent(), port, `${origin.url}/small?after`);
    assert.equal(after.body, 'ok');
  } finally {
    for (const t of timers) clearInterval(t);
    readers?.stop();
    agent.destroy();
    await proxy?.stop();
    await origin.close();
  }
});
