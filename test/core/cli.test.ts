import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as http from 'node:http';
import * as net from 'node:net';
import { mkdtempSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { curl, startOrigin, waitFor, type TestOrigin } from '../helpers/net';
import { runCli, startCliProxy } from '../helpers/processes';

describe('command line', () => {
  let origin: TestOrigin;
  before(async () => {
    origin = await startOrigin((req, res) => {
      if (req.url === '/slow') {
        res.writeHead(200, { 'Content-Type': 'text/plain' });
        res.write('first half, ');
        setTimeout(() => res.end('second half'), 700);
        return;
      }
      res.end('hello from origin');
    });
  });
  after(() => origin.close());

  test('--help prints usage and exits 0', async () => {
    const r = await runCli(['--help']);
    assert.equal(r.code, 0);
    assert.match(r.stdout, /Usage: caching-proxy/);
    assert.match(r.stdout, /--upstream URL/);
  });

  test('an unknown flag: precise message, exit 2', async () => {
    const r = await runCli(['--bogus']);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /unknown option "--bogus"/);
  });

  test('invalid values: every problem named, exit 2', async () => {
    const r = await runCli(['--port', 'eighty', '--policy', 'sometimes', '--timeout', '-1']);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /port: "eighty" is invalid; expected a whole number from 0 to 65535/);
    assert.match(r.stderr, /cache\.policy: "sometimes" is invalid; expected one of standard, private, always, offline, off/);
    assert.match(r.stderr, /timeoutSeconds: "-1" is invalid/);
  });

  test('a flag missing its value: exit 2', async () => {
    const r = await runCli(['--upstream']);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /--upstream needs a value/);
  });

  test('a non-loopback host without --allow-remote is refused, exit 2', async () => {
    const r = await runCli(['--host', '0.0.0.0']);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /not a loopback address/);
    assert.match(r.stderr, /--allow-remote/);
  });

  test('with --allow-remote it listens on all interfaces and warns', async () => {
    const p = await startCliProxy(['--host', '0.0.0.0', '--allow-remote', '--memory-only']);
    try {
      assert.match(p.output(), /listening on http:\/\/0\.0\.0\.0:\d+/);
      await waitFor(() => /WARNING/.test(p.output()), 'the warning');
      assert.match(p.output(), /WARNING: listening on 0\.0\.0\.0: other machines can reach this proxy and no --auth is set/);
      const r = await curl(['-x', `http://127.0.0.1:${p.port}`, `${origin.url}/remote`]);
      assert.equal(r.stdout, 'hello from origin');
    } finally {
      await p.stop();
    }
  });

  test('a port in use: clear message, exit 1', async () => {
    const blocker = net.createServer();
    await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', r));
    const port = (blocker.address() as net.AddressInfo).port;
    try {
      const r = await runCli(['--port', String(port), '--memory-only']);
      assert.equal(r.code, 1);
      assert.match(r.stderr, new RegExp(`port ${port} on 127\\.0\\.0\\.1 is already in use`));
    } finally {
      blocker.close();
    }
  });

  test('--config file values apply, and flags override them', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'cp-config-'));
    const file = path.join(dir, 'proxy.json');
    writeFileSync(file, JSON.stringify({ timeoutSeconds: 5, cache: { policy: 'sometimes' } }));
    const bad = await runCli(['--config', file]);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /cache\.policy: "sometimes"/);
    const overridden = await startCliProxy(['--config', file, '--policy', 'off', '--memory-only']);
    await overridden.stop();
    writeFileSync(file, '{ not json');
    const broken = await runCli(['--config', file]);
    assert.equal(broken.code, 2);
    assert.match(broken.stderr, /is not valid JSON/);
  });

  test('prints its address, logs one line per request, serves curl', async () => {
    const p = await startCliProxy(['--memory-only']);
    try {
      assert.match(p.output(), /Caching proxy listening on http:\/\/127\.0\.0\.1:\d+/);
      const r = await curl(['-x', p.url, `${origin.url}/logged`]);
      assert.equal(r.stdout, 'hello from origin');
      await waitFor(() => /GET http:\/\/127\.0\.0\.1:\d+\/logged 200/.test(p.output()), 'a log line for the request');
    } finally {
      await p.stop();
    }
  });

  test('SIGTERM with a request in flight: the response completes, then the process exits 0', async () => {
    const p = await startCliProxy(['--memory-only']);
    const body = new Promise<string>((resolve, reject) => {
      http.get({ host: '127.0.0.1', port: p.port, path: `${origin.url}/slow` }, (res) => {
        let text = '';
        res.on('data', (c) => (text += c));
        res.on('end', () => resolve(text));
        res.on('error', reject);
      }).on('error', reject);
    });
    await waitFor(() => origin.requests.some((r) => r.url === '/slow'), 'the request to reach the origin');
    p.child.kill('SIGTERM');
    assert.equal(await body, 'first half, second half');
    assert.equal(await p.exited, 0);
    // And it no longer accepts connections.
    const refused = await new Promise<boolean>((resolve) => {
      const s = net.connect(p.port, '127.0.0.1');
      s.on('connect', () => {
        s.destroy();
        resolve(false);
      });
      s.on('error', () => resolve(true));
    });
    assert.ok(refused);
  });
});

describe('the proxy process heap', () => {
  test('the old generation may grow 1.3x past its live size, unless the user set the factor', async () => {
    const { heapGrowingFlag } = await import('../../src/cli/heap');
    assert.equal(heapGrowingFlag([], undefined), '--heap-growing-percent=30');
    assert.equal(heapGrowingFlag(['--max-old-space-size=512'], '--enable-source-maps'), '--heap-growing-percent=30');
    assert.equal(heapGrowingFlag(['--heap-growing-percent=20'], undefined), null);
    assert.equal(heapGrowingFlag([], '--heap_growing_percent=80'), null);
  });
});
