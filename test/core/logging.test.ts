import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import * as http from 'node:http';
import { closeSync, mkdtempSync, openSync, readFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { startOrigin, waitFor, type TestOrigin } from '../helpers/net';
import { CLI } from '../helpers/processes';

/**
 * The command line's log lines as a user's service manager, terminal pipe or log file takes
 * them: every line there, in order, after SIGTERM/SIGINT; a reader that pauses never stalls
 * the proxy; one that stalls costs a bounded buffer and a count of the lines dropped.
 */
describe('log output', () => {
  let origin: TestOrigin;
  before(async () => {
    origin = await startOrigin((_req, res) => {
      res.writeHead(200, { 'Cache-Control': 'max-age=600', 'Content-Type': 'text/plain' });
      res.end('logged');
    });
  });
  after(() => origin.close());

  /** `count` GETs of distinct URLs, `concurrency` at a time over keep-alive connections; resolves when all are answered. */
  async function requests(port: number, tag: string, count: number, concurrency = 1): Promise<void> {
    const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency });
    let next = 0;
    const one = (i: number) =>
      new Promise<void>((resolve, reject) => {
        const url = `${origin.url}/${tag}/${i}`;
        http
          .get({ host: '127.0.0.1', port, path: url, headers: { host: new URL(url).host }, agent }, (res) => {
            res.resume();
            res.on('end', () => (res.statusCode === 200 ? resolve() : reject(new Error(`${url}: ${res.statusCode}`))));
          })
          .on('error', reject);
      });
    const worker = async () => {
      while (next < count) await one(next++);
    };
    await Promise.all(Array.from({ length: concurrency }, worker));
    agent.destroy();
  }

  /** The `i` of each response line for /tag/i, in the order the lines were written. */
  function responseOrder(output: string, tag: string): number[] {
    const re = new RegExp(`info  #\\d+ GET http://127\\.0\\.0\\.1:\\d+/${tag}/(\\d+) 200 `, 'g');
    return [...output.matchAll(re)].map((m) => Number(m[1]));
  }

  const upTo = (n: number) => Array.from({ length: n }, (_, i) => i);

  function exitOf(child: ChildProcess): Promise<number | null> {
    return new Promise((resolve) => (child.exitCode !== null ? resolve(child.exitCode) : child.once('exit', (code) => resolve(code))));
  }

  /** The CLI with stdout and stderr appended to one file, as a service manager runs it; resolves once it listens. */
  async function startCliLoggingToFile(): Promise<{ child: ChildProcess; exited: Promise<number | null>; read: () => string; port: number }> {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'cp-log-'));
    const file = path.join(dir, 'proxy.log');
    const fd = openSync(file, 'w');
    const child = spawn(process.execPath, [CLI, '--port', '0', '--memory-only'], { stdio: ['ignore', fd, fd] });
    closeSync(fd);
    const exited = exitOf(child);
    const read = () => readFileSync(file, 'utf8');
    await waitFor(() => /listening on http:\/\/127\.0\.0\.1:\d+/.test(read()), 'the listening line', 10_000);
    const port = Number(/listening on http:\/\/127\.0\.0\.1:(\d+)/.exec(read())![1]);
    return { child, exited, read, port };
  }

  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    test(`stdout and stderr to a file: every line, in order, after ${signal}`, async () => {
      const { child, exited, read, port } = await startCliLoggingToFile();
      const count = 1500;
      await requests(port, `file-${signal}`, count);
      // At once: the last lines are still in the writer's batch.
      child.kill(signal);
      assert.equal(await exited, 0);
      const output = read();
      assert.deepEqual(responseOrder(output, `file-${signal}`), upTo(count));
      const tail = output.slice(output.lastIndexOf(`/file-${signal}/${count - 1} `));
      assert.match(tail, new RegExp(`caching-proxy: ${signal} received, finishing in-flight requests…\\n[\\d:.]+ info  stopped\\n$`));
    });
  }

  test('one line per request at the default level, the cache outcome on it: hits, a miss that is stored, and no-store responses on both paths', async () => {
    const { child, exited, read, port } = await startCliLoggingToFile();
    const noStore = await startOrigin((req, res) => {
      if (req.url!.startsWith('/stored')) res.writeHead(200, { 'Cache-Control': 'max-age=600' });
      else res.writeHead(200, { 'Cache-Control': 'no-store' });
      res.end('x');
    });
    try {
      // The first no-store request takes the ordinary path (and marks the URL); the next ones the quick pass-through.
      const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
      for (const p of ['/nostore', '/nostore', '/nostore', '/stored', '/stored', '/stored']) {
        await new Promise<void>((resolve, reject) => {
          const url = `${noStore.url}${p}`;
          http.get({ host: '127.0.0.1', port, path: url, headers: { host: new URL(url).host }, agent }, (res) => res.resume().on('end', resolve)).on('error', reject);
        });
      }
      agent.destroy();
      child.kill('SIGTERM');
      assert.equal(await exited, 0);
    } finally {
      await noStore.close();
    }
    const lines = read().split('\n').filter((l) => l.includes(noStore.url));
    assert.equal(lines.length, 6, lines.join('\n'));
    for (const line of lines.slice(0, 3)) assert.match(line, /info  #\d+ GET http:\/\/127\.0\.0\.1:\d+\/nostore 200 \[fwd=miss; detail=no-store\] 1 B/);
    assert.match(lines[3], /\/stored 200 \[fwd=miss; stored\]/);
    for (const line of lines.slice(4)) assert.match(line, /\/stored 200 \[hit; ttl=\d+\]/);
  });

  test('a terminal (a pseudo-terminal from util-linux script): every line, in order, after SIGTERM', async () => {
    const child = spawn('script', ['-qfec', `exec ${process.execPath} ${CLI} --port 0 --memory-only`, '/dev/null'], { stdio: ['pipe', 'pipe', 'pipe'] });
    const exited = exitOf(child);
    let out = '';
    child.stdout!.on('data', (c: Buffer) => (out += c.toString()));
    child.stderr!.on('data', (c: Buffer) => (out += c.toString()));
    await waitFor(() => /listening on http:\/\/127\.0\.0\.1:\d+/.test(out), 'the listening line', 10_000);
    const port = Number(/listening on http:\/\/127\.0\.0\.1:(\d+)/.exec(out)![1]);
    const count = 1500;
    await requests(port, 'tty', count);
    // script's child is the proxy (its shell execs into node).
    const proxyPid = Number(readFileSync(`/proc/${child.pid}/task/${child.pid}/children`, 'utf8').trim());
    process.kill(proxyPid, 'SIGTERM');
    assert.equal(await exited, 0);
    const lines = out.replace(/\r\n/g, '\n');
    assert.deepEqual(responseOrder(lines, 'tty'), upTo(count));
    assert.match(lines, /caching-proxy: SIGTERM received, finishing in-flight requests…\n[\d:.]+ info  stopped\n$/);
  });

  test('a pipe whose reader pauses: requests keep being answered, and after SIGTERM every line arrives, in order', async () => {
    const child = spawn(process.execPath, [CLI, '--port', '0', '--memory-only'], { stdio: ['ignore', 'pipe', 'pipe'] });
    const exited = exitOf(child);
    let out = '';
    child.stdout!.on('data', (c: Buffer) => (out += c.toString()));
    const drained = new Promise((r) => child.stdout!.once('close', r));
    child.stderr!.resume();
    await waitFor(() => /listening on http:\/\/127\.0\.0\.1:\d+/.test(out), 'the listening line', 10_000);
    const port = Number(/listening on http:\/\/127\.0\.0\.1:(\d+)/.exec(out)![1]);
    // The reader stops: the pipe (64 KiB) and this side's buffer fill up with the first lines.
    child.stdout!.pause();
    const count = 4000; // about 400 KB of lines
    await requests(port, 'paused', count);
    const seenWhilePaused = responseOrder(out, 'paused').length;
    assert.ok(seenWhilePaused < count, `the reader took ${seenWhilePaused} of ${count} lines while paused: the pipe never filled`);
    child.kill('SIGTERM');
    // Still paused for a moment after the signal: the proxy waits for its log.
    await new Promise((r) => setTimeout(r, 300));
    child.stdout!.resume();
    assert.equal(await exited, 0);
    await drained;
    assert.deepEqual(responseOrder(out, 'paused'), upTo(count));
    assert.match(out, /caching-proxy: SIGTERM received, finishing in-flight requests…\n[\d:.]+ info  stopped\n$/);
  });

  test('a reader that stalls: memory stays bounded, lines past the bound are dropped and counted', async () => {
    const bound = 32 * 1024;
    const child = spawn(process.execPath, [CLI, '--port', '0', '--memory-only'], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, CACHING_PROXY_LOG_BUFFER_BYTES: String(bound) },
    });
    const exited = exitOf(child);
    let out = '';
    child.stdout!.on('data', (c: Buffer) => (out += c.toString()));
    child.stderr!.on('data', (c: Buffer) => (out += c.toString()));
    const drained = new Promise((r) => child.stdout!.once('close', r));
    await waitFor(() => /listening on http:\/\/127\.0\.0\.1:\d+/.test(out), 'the listening line', 10_000);
    const port = Number(/listening on http:\/\/127\.0\.0\.1:(\d+)/.exec(out)![1]);
    child.stdout!.pause();
    child.stderr!.pause();
    const count = 8000; // about 700 KB of lines
    await requests(port, 'stalled', count, 4);
    child.stdout!.resume();
    child.stderr!.resume();
    child.kill('SIGTERM');
    assert.equal(await exited, 0);
    await drained;
    // One count per stretch of drops: the reader here stalls once, but its read buffer may take a little now and then.
    const notices = [...out.matchAll(/warn  caching-proxy: (\d+) log lines dropped: their reader fell behind\n/g)];
    assert.ok(notices.length > 0, `no count of dropped lines in:\n${out.slice(-2000)}`);
    const dropped = notices.reduce((sum, m) => sum + Number(m[1]), 0);
    // One line per request (the response, saying `stored`).
    const kept = out.split('\n').filter((line) => line.includes('/stalled/')).length;
    assert.equal(kept + dropped, count, `${kept} lines kept + ${dropped} dropped (${notices.length} counts)`);
    assert.ok(dropped > count / 2, `only ${dropped} of ${count} lines dropped`);
    // What waited for the reader: the pipe, this side's read buffer, the writer's bound and one batch.
    const heldBytes = Buffer.byteLength(out.slice(0, notices[0].index));
    assert.ok(heldBytes < bound + 256 * 1024, `${heldBytes} bytes of lines were held for a stalled reader`);
    // Only whole lines were dropped: every line is intact.
    for (const line of out.split('\n').slice(0, -1)) {
      assert.match(line, /^(\d{2}:\d{2}:\d{2}\.\d{3} (trace|debug|info |warn |error) \S.*|caching-proxy: .*|Caching proxy listening on .*)$/);
    }
  });
});
