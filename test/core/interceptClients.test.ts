import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { runCli, startCliProxy, type CliProxy } from '../helpers/processes';
import { startHttpsOrigin, TestCa, type TestHttpsOrigin } from '../helpers/tls';

const PACKAGE = 'cp-intercept-fixture';

function run(command: string, args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(command, args, { env, timeout: 120_000, encoding: 'utf8' }, (err, stdout, stderr) => {
      resolve({ code: err ? Number((err as NodeJS.ErrnoException).code) || 1 : 0, stdout, stderr });
    });
  });
}

/** The environment of a user's shell, less any proxy or npm settings the test machine has. */
function cleanEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!/proxy|^npm_/i.test(k)) env[k] = v;
  return env;
}

describe('`caching-proxy ca`', () => {
  test('prints the absolute ca.pem path first, then its SHA-256 fingerprint and validity; the same CA on the next run', async () => {
    const dir = path.join(mkdtempSync(path.join(os.tmpdir(), 'cp-ca-cmd-')), 'nested', 'ca');
    const first = await runCli(['ca', '--ca-dir', dir]);
    assert.equal(first.code, 0, first.stderr);
    const lines = first.stdout.split('\n');
    assert.equal(lines[0], path.join(dir, 'ca.pem'));
    assert.ok(path.isAbsolute(lines[0]) && existsSync(lines[0]));
    const openssl = execFileSync('openssl', ['x509', '-in', lines[0], '-noout', '-fingerprint', '-sha256'], { encoding: 'utf8' }).trim().split('=')[1];
    assert.equal(lines[1], `SHA-256 fingerprint: ${openssl}`);
    assert.match(lines[2], /^Valid from \d{4}-\d\d-\d\dT.* to \d{4}-/);
    const second = await runCli(['ca', '--ca-dir', dir]);
    assert.equal(second.stdout.split('\n')[1], lines[1], 'not made again');
    const bad = await runCli(['ca', '--bogus']);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /caching-proxy ca: .*bogus/);
  });

  test('a damaged CA is reported, never replaced', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'cp-ca-bad-'));
    writeFileSync(path.join(dir, 'ca.pem'), 'not a certificate\n');
    const r = await runCli(['ca', '--ca-dir', dir]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /ca-key\.pem is missing/);
    assert.equal(readFileSync(path.join(dir, 'ca.pem'), 'utf8'), 'not a certificate\n');
  });
});

describe('npm install through an intercepting CLI proxy (a local HTTPS registry)', () => {
  const testCa = new TestCa();
  const work = mkdtempSync(path.join(os.tmpdir(), 'cp-npm-intercept-'));
  let registry: TestHttpsOrigin;
  let proxy: CliProxy;
  const caDir = path.join(work, 'ca');

  before(async () => {
    const source = path.join(work, 'source');
    mkdirSync(source);
    writeFileSync(path.join(source, 'package.json'), JSON.stringify({ name: PACKAGE, version: '1.0.0', main: 'index.js' }));
    writeFileSync(path.join(source, 'index.js'), "module.exports = 'intercepted and cached';\n");
    const packed = path.join(work, 'packed');
    mkdirSync(packed);
    execFileSync('npm', ['pack', '--pack-destination', packed, '--silent'], { cwd: source, env: cleanEnv(), stdio: 'ignore' });
    const tarball = readFileSync(path.join(packed, `${PACKAGE}-1.0.0.tgz`));
    let metadata = '';
    registry = await startHttpsOrigin(testCa.leaf('DNS:localhost,IP:127.0.0.1'), (req, res) => {
      if (req.url === `/${PACKAGE}`) {
        res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'public, max-age=300', etag: '"meta-1"' });
        res.end(metadata);
      } else if (req.url === `/${PACKAGE}/-/${PACKAGE}-1.0.0.tgz`) {
        res.writeHead(200, { 'content-type': 'application/octet-stream', 'cache-control': 'public, max-age=31536000, immutable' });
        res.end(tarball);
      } else {
        res.writeHead(404, { 'content-type': 'application/json' });
        res.end('{"error":"not found"}');
      }
    });
    const base = `https://localhost:${registry.port}`;
    metadata = JSON.stringify({
      name: PACKAGE,
      'dist-tags': { latest: '1.0.0' },
      versions: {
        '1.0.0': {
          name: PACKAGE,
          version: '1.0.0',
          main: 'index.js',
          dist: {
            tarball: `${base}/${PACKAGE}/-/${PACKAGE}-1.0.0.tgz`,
            integrity: `sha512-${createHash('sha512').update(tarball).digest('base64')}`,
            shasum: createHash('sha1').update(tarball).digest('hex'),
          },
        },
      },
    });
    // The proxy trusts the registry's CA the way a user's Node does: NODE_EXTRA_CA_CERTS.
    proxy = await startCliProxy(['--intercept', 'localhost', '--ca-dir', caDir, '--memory-only'], { NODE_EXTRA_CA_CERTS: testCa.certPath });
  });
  after(async () => {
    await proxy?.stop();
    await registry?.close();
  });

  test('twice with fresh npm caches: the second install is served from the proxy cache', async () => {
    const bundle = path.join(caDir, 'ca-bundle.pem');
    assert.ok(existsSync(bundle), 'the proxy keeps ca-bundle.pem beside its CA');
    const install = (n: number) => {
      const prefix = path.join(work, `project${n}`);
      mkdirSync(prefix);
      writeFileSync(path.join(prefix, 'package.json'), JSON.stringify({ name: `project${n}`, version: '1.0.0', private: true }));
      return run(
        'npm',
        [
          'install', PACKAGE, '--prefix', prefix, '--registry', `https://localhost:${registry.port}/`,
          '--proxy', proxy.url, '--https-proxy', proxy.url, '--noproxy', '',
          // npm's machine-wide cafile replaces Node's trust: the merged bundle is what reaches npm.
          '--cafile', bundle,
          '--cache', path.join(work, `npm-cache${n}`), '--no-audit', '--no-fund', '--no-update-notifier', '--loglevel', 'error',
        ],
        cleanEnv(),
      ).then((r) => ({ ...r, prefix }));
    };
    const first = await install(1);
    assert.equal(first.code, 0, first.stderr);
    assert.equal(readFileSync(path.join(first.prefix, 'node_modules', PACKAGE, 'index.js'), 'utf8'), "module.exports = 'intercepted and cached';\n");
    const asked = registry.requests.length;
    assert.equal(registry.count(`/${PACKAGE}/-/${PACKAGE}-1.0.0.tgz`), 1);

    const second = await install(2);
    assert.equal(second.code, 0, second.stderr);
    assert.ok(existsSync(path.join(second.prefix, 'node_modules', PACKAGE, 'index.js')));
    assert.equal(registry.requests.length, asked, `the registry saw nothing new: ${registry.requests.slice(asked).join(', ')}`);
    assert.match(proxy.output(), new RegExp(`GET https://localhost:${registry.port}/${PACKAGE}/-/${PACKAGE}-1\\.0\\.0\\.tgz 200 \\[hit`));
  });
});
