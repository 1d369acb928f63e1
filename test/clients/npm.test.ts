import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import test from 'node:test';
import { startTestProxy, type TestProxy } from '../helpers/net';
import { startHttpsOrigin, TestCa, type TestHttpsOrigin } from '../helpers/tls';

/**
 * Offline installs with the real npm over HTTPS: a local registry shaped like a mirror that sends
 * no caching headers (ETag only), intercepted by the proxy, with the npm preset. Four installs,
 * each from a fresh npm cache: first, again (every tarball from the proxy's cache), with the
 * registry gone, and after a restart under the offline policy.
 */

/** cp-app depends on cp-left and cp-right; cp-right depends on cp-leaf. */
const PACKAGES: Record<string, Record<string, string>> = {
  'cp-app': { 'cp-left': '^1.0.0', 'cp-right': '^1.0.0' },
  'cp-left': {},
  'cp-right': { 'cp-leaf': '^1.0.0' },
  'cp-leaf': {},
};
const tarballPath = (name: string) => `/${name}/-/${name}-1.0.0.tgz`;

/** The environment of a user's shell, less any proxy or npm settings the test machine has. */
function cleanEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!/proxy|^npm_/i.test(k)) env[k] = v;
  return env;
}

function pack(work: string): Record<string, Buffer> {
  const out: Record<string, Buffer> = {};
  for (const [name, dependencies] of Object.entries(PACKAGES)) {
    const source = path.join(work, 'source', name);
    fs.mkdirSync(source, { recursive: true });
    fs.writeFileSync(path.join(source, 'package.json'), JSON.stringify({ name, version: '1.0.0', main: 'index.js', dependencies }));
    fs.writeFileSync(path.join(source, 'index.js'), `module.exports = ${JSON.stringify(name)};\n`);
    execFileSync('npm', ['pack', '--pack-destination', path.join(work, 'source'), '--silent'], { cwd: source, env: cleanEnv(), stdio: 'ignore' });
    out[name] = fs.readFileSync(path.join(work, 'source', `${name}-1.0.0.tgz`));
  }
  return out;
}

/** A registry that sends what many mirrors do: no Cache-Control, no Expires; an ETag on documents. */
async function startRegistry(ca: TestCa, tarballs: Record<string, Buffer>): Promise<TestHttpsOrigin> {
  let base = '';
  const registry = await startHttpsOrigin(ca.leaf('DNS:localhost,IP:127.0.0.1'), (req, res) => {
    const url = decodeURIComponent(req.url ?? '/');
    const name = Object.keys(PACKAGES).find((n) => url === `/${n}`);
    if (name) {
      const tarball = tarballs[name];
      const doc = JSON.stringify({
        name,
        'dist-tags': { latest: '1.0.0' },
        versions: {
          '1.0.0': {
            name, version: '1.0.0', main: 'index.js', dependencies: PACKAGES[name],
            dist: { tarball: `${base}${tarballPath(name)}`, integrity: `sha512-${createHash('sha512').update(tarball).digest('base64')}`, shasum: createHash('sha1').update(tarball).digest('hex') },
          },
        },
      });
      const etag = `"${createHash('sha1').update(doc).digest('hex')}"`;
      if (req.headers['if-none-match'] === etag) return res.writeHead(304, { etag }).end();
      return res.writeHead(200, { 'content-type': 'application/json', etag }).end(doc);
    }
    const tgz = Object.keys(PACKAGES).find((n) => url === tarballPath(n));
    if (tgz) return res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': tarballs[tgz].length }).end(tarballs[tgz]);
    res.writeHead(404, { 'content-type': 'application/json' }).end('{"error":"not found"}');
  });
  base = `https://localhost:${registry.port}`;
  return registry;
}

test('npm install over intercepted HTTPS with the npm preset: the second install gets every tarball from the cache; with the registry gone, and under policy offline after a restart, it still succeeds', async () => {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'cp-npm-offline-'));
  const ca = new TestCa();
  const caDir = path.join(work, 'ca');
  const cacheDir = path.join(work, 'proxy-cache');
  let registry: TestHttpsOrigin | null = null;
  let proxy: TestProxy | null = null;
  const proxyConfig = (policy: 'standard' | 'offline') => ({ presets: ['npm'], https: { intercept: ['localhost'], caDir, upstreamCa: ca.certPath }, cache: { dir: cacheDir, policy } });
  try {
    registry = await startRegistry(ca, pack(work));
    const registryUrl = `https://localhost:${registry.port}/`;
    proxy = await startTestProxy(proxyConfig('standard'));
    const install = async (n: number) => {
      const prefix = path.join(work, `project${n}`);
      fs.mkdirSync(prefix);
      fs.writeFileSync(path.join(prefix, 'package.json'), JSON.stringify({ name: `project${n}`, version: '1.0.0', private: true, dependencies: { 'cp-app': '^1.0.0' } }));
      const args = [
        'install', '--prefix', prefix, '--registry', registryUrl,
        '--proxy', proxy!.url, '--https-proxy', proxy!.url, '--noproxy', '',
        // npm's machine-wide cafile replaces Node's trust: the merged bundle (system roots + our CA) is what reaches npm.
        '--cafile', path.join(caDir, 'ca-bundle.pem'),
        '--cache', path.join(work, `npm-cache${n}`), '--prefer-online', '--no-audit', '--no-fund', '--no-update-notifier', '--loglevel', 'error',
      ];
      const r = await new Promise<{ code: number; out: string }>((resolve) => {
        execFile('npm', args, { env: cleanEnv(), timeout: 120_000, encoding: 'utf8' }, (err, stdout, stderr) => resolve({ code: err ? 1 : 0, out: stdout + stderr }));
      });
      assert.equal(r.code, 0, `npm install #${n} failed:\n${r.out}`);
      for (const name of Object.keys(PACKAGES)) {
        assert.equal(fs.readFileSync(path.join(prefix, 'node_modules', name, 'index.js'), 'utf8'), `module.exports = ${JSON.stringify(name)};\n`, `#${n}: ${name} installed`);
      }
    };

    await install(1);
    for (const name of Object.keys(PACKAGES)) assert.equal(registry.count(tarballPath(name)), 1);

    await install(2);
    for (const name of Object.keys(PACKAGES)) assert.equal(registry.count(tarballPath(name)), 1, `${name}: the second install's tarball came from the proxy's cache`);
    const tarballHits = proxy.events.filter((e) => e.type === 'response' && e.url.endsWith('.tgz') && /^hit; /.test(e.cache ?? ''));
    assert.equal(tarballHits.length, Object.keys(PACKAGES).length);
    assert.ok(tarballHits.every((e) => e.type === 'response' && e.cache!.endsWith('rule="npm:tarball"')));
    const metadata = proxy.events.filter((e) => e.type === 'response' && e.url === `${registryUrl}cp-app`);
    assert.match(metadata.at(-1)?.type === 'response' ? (metadata.at(-1) as { cache?: string }).cache ?? '' : '', /fwd-status=304; .*rule="npm:metadata"/, 'package documents are revalidated');

    await registry.close();
    registry = null;
    await install(3);

    await proxy.close();
    proxy = await startTestProxy(proxyConfig('offline'));
    await install(4);
  } finally {
    await proxy?.close();
    await registry?.close();
    fs.rmSync(work, { recursive: true, force: true });
  }
});
