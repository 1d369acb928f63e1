import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { curl } from '../helpers/net';
import { startCaseOrigin, withProxy } from './origin';

/** Header lines of curl -D - output, lower-cased names. */
function headersOf(out: string): Record<string, string> {
  const h: Record<string, string> = {};
  for (const line of out.split('\r\n')) {
    const i = line.indexOf(':');
    if (i > 0) h[line.slice(0, i).toLowerCase()] = line.slice(i + 1).trim();
  }
  return h;
}

test('curl through the proxy: miss then hit, HEAD from the cache, conditional 304', () =>
  withProxy({}, async (origin, p) => {
    const first = await curl(['-x', p.url, '-D', '-', '-o', '/dev/null', `${origin.url}/etag`]);
    assert.equal(first.code, 0, first.stderr);
    assert.equal(headersOf(first.stdout)['cache-status'], 'caching-proxy; fwd=miss; stored');
    const body = await curl(['-x', p.url, `${origin.url}/max-age`]);
    assert.equal(body.stdout, 'max-age v1');
    const hit = await curl(['-x', p.url, '-D', '-', `${origin.url}/max-age`]);
    assert.match(headersOf(hit.stdout)['cache-status'], /^caching-proxy; hit; ttl=\d+$/);
    assert.ok(hit.stdout.endsWith('max-age v1'));
    const head = await curl(['-x', p.url, '-I', `${origin.url}/max-age`]);
    assert.match(head.stdout, /^HTTP\/1\.1 200/);
    assert.match(headersOf(head.stdout)['cache-status'], /; hit; /);
    assert.equal(origin.count('/max-age'), 1);
    const reload = await curl(['-x', p.url, '-H', 'Cache-Control: no-cache', '-D', '-', '-o', '/dev/null', `${origin.url}/max-age`]);
    assert.match(headersOf(reload.stdout)['cache-status'], /fwd=request/);
    assert.equal(origin.count('/max-age'), 2);
  }));

test('CLI: node dist/cli.js --port 0 --cache-dir D, curl twice -> the second is a hit; after a restart still a hit', async () => {
  const cli = path.resolve('dist/cli.js');
  assert.ok(fs.existsSync(cli), 'run `npm run build` first');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cp-cli-'));
  const origin = await startCaseOrigin();
  const run = async (fn: (proxyUrl: string) => Promise<void>) => {
    const child = spawn(process.execPath, [cli, '--port', '0', '--cache-dir', dir], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (c) => (out += c));
    child.stderr.on('data', (c) => (out += c));
    try {
      const proxyUrl = await new Promise<string>((resolve, reject) => {
        const check = () => {
          const m = /listening on (http:\/\/[\d.]+:\d+)/.exec(out);
          if (m) resolve(m[1]);
        };
        child.stdout.on('data', check);
        child.once('exit', (code) => reject(new Error(`cli exited with ${code}: ${out}`)));
      });
      await fn(proxyUrl);
    } finally {
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await exited;
    }
  };
  try {
    await run(async (proxyUrl) => {
      const a = await curl(['-x', proxyUrl, '-D', '-', `${origin.url}/max-age`]);
      const b = await curl(['-x', proxyUrl, '-D', '-', `${origin.url}/max-age`]);
      assert.equal(headersOf(a.stdout)['cache-status'], 'caching-proxy; fwd=miss; stored');
      assert.match(headersOf(b.stdout)['cache-status'], /^caching-proxy; hit; ttl=\d+$/);
      assert.ok(b.stdout.endsWith('max-age v1'));
    });
    await run(async (proxyUrl) => {
      const c = await curl(['-x', proxyUrl, '-D', '-', `${origin.url}/max-age`]);
      assert.match(headersOf(c.stdout)['cache-status'], /^caching-proxy; hit; ttl=\d+$/);
    });
    assert.equal(origin.count('/max-age'), 1);
  } finally {
    await origin.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
