import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import test from 'node:test';
import { startTestProxy, type TestProxy } from '../helpers/net';
import { startStaticOrigin, type StaticOrigin } from '../helpers/staticOrigin';

/**
 * Offline downloads with the real pip (where it is installed) through the proxy, against a local
 * index shaped like PyPI's simple API (/simple/NAME/ pages linking /packages/…/*.whl with a
 * sha256 fragment), with the pypi preset.
 */

const skip = spawnSync('pip', ['--version']).status === 0 ? false : 'pip is not installed on this machine';
const WHEEL = 'cp_hello-1.0.0-py3-none-any.whl';
const WHEEL_PATH = `/packages/ab/cd/${WHEEL}`;

/** A minimal valid wheel (a zip with the module and its dist-info), made by Python's zipfile. */
function buildIndex(root: string): void {
  const wheel = path.join(root, WHEEL_PATH);
  fs.mkdirSync(path.dirname(wheel), { recursive: true });
  const script = `
import base64, hashlib, sys, zipfile
files = {
  "cp_hello/__init__.py": "GREETING = 'cached'\\n",
  "cp_hello-1.0.0.dist-info/METADATA": "Metadata-Version: 2.1\\nName: cp-hello\\nVersion: 1.0.0\\n",
  "cp_hello-1.0.0.dist-info/WHEEL": "Wheel-Version: 1.0\\nGenerator: caching-proxy-tests\\nRoot-Is-Purelib: true\\nTag: py3-none-any\\n",
}
record = []
with zipfile.ZipFile(sys.argv[1], "w") as z:
    for name, text in files.items():
        data = text.encode()
        z.writestr(name, data)
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{name},sha256={digest},{len(data)}")
    record.append("cp_hello-1.0.0.dist-info/RECORD,,")
    z.writestr("cp_hello-1.0.0.dist-info/RECORD", "\\n".join(record) + "\\n")
`;
  const made = spawnSync('python3', ['-c', script, wheel], { encoding: 'utf8' });
  assert.equal(made.status, 0, made.stderr);
  const sha = crypto.createHash('sha256').update(fs.readFileSync(wheel)).digest('hex');
  fs.mkdirSync(path.join(root, 'simple/cp-hello'), { recursive: true });
  fs.writeFileSync(path.join(root, 'simple/cp-hello/index.html'), `<!DOCTYPE html>\n<html><body><a href="${WHEEL_PATH}#sha256=${sha}">${WHEEL}</a></body></html>\n`);
}

function pipDownload(root: string, run: string, proxy: TestProxy, originUrl: string): Promise<void> {
  const dest = path.join(root, run);
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!/proxy|^pip_/i.test(k)) env[k] = v;
  // The machine's pip.conf may name another index: none of it.
  env.PIP_CONFIG_FILE = os.devNull;
  const args = ['download', '--no-deps', '--no-cache-dir', '--disable-pip-version-check', '--retries', '0', '--timeout', '20', '--index-url', `${originUrl}/simple/`, '--proxy', proxy.url, '-d', dest, 'cp-hello'];
  return new Promise((resolve, reject) => {
    execFile('pip', args, { env, encoding: 'utf8', timeout: 120_000 }, (err, stdout, stderr) => {
      if (err) return reject(new Error(`pip download (${run}) failed:\n${stdout}\n${stderr}`));
      try {
        assert.ok(fs.existsSync(path.join(dest, WHEEL)), `${run}: the wheel was downloaded`);
        resolve();
      } catch (e) {
        reject(e as Error);
      }
    });
  });
}

test('pip download through the proxy with the pypi preset: the second run gets the wheel from the cache; with the index gone, and under policy offline after a restart, it still succeeds', { skip }, async () => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'cp-pip-'));
  const cacheDir = path.join(root, 'proxy-cache');
  let origin: StaticOrigin | null = null;
  let proxy: TestProxy | null = null;
  try {
    buildIndex(root);
    origin = await startStaticOrigin(root);
    const originUrl = origin.url;
    proxy = await startTestProxy({ presets: ['pypi'], cache: { dir: cacheDir } });
    await pipDownload(root, 'run1', proxy, originUrl);
    assert.equal(origin.count(WHEEL_PATH), 1);
    await pipDownload(root, 'run2', proxy, originUrl);
    assert.equal(origin.count(WHEEL_PATH), 1, 'the second download came from the cache');
    assert.ok(proxy.events.some((e) => e.type === 'response' && e.url.endsWith('.whl') && /^hit; .*rule="pypi:wheel"/.test(e.cache ?? '')));
    assert.ok(proxy.events.some((e) => e.type === 'response' && e.url.endsWith('/simple/cp-hello/') && /rule="pypi:index"/.test(e.cache ?? '')));
    await origin.close();
    origin = null;
    await pipDownload(root, 'run3', proxy, originUrl);
    await proxy.close();
    proxy = await startTestProxy({ presets: ['pypi'], cache: { dir: cacheDir, policy: 'offline' } });
    await pipDownload(root, 'run4', proxy, originUrl);
  } finally {
    await proxy?.close();
    await origin?.close();
    fs.rmSync(root, { recursive: true, force: true });
  }
});
