import assert from 'node:assert/strict';
import { execFile, execFileSync, spawnSync } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import test from 'node:test';
import { startTestProxy, type TestProxy } from '../helpers/net';
import { startStaticOrigin, type StaticOrigin } from '../helpers/staticOrigin';

/**
 * Offline installs with the real apt-get (plain HTTP through Acquire::http::Proxy) against a
 * local repository shaped like a Debian mirror (dists/…/InRelease-less Release, Packages.gz,
 * pool/…/*.deb), with the debian preset: fetched once, then from the cache, then with the
 * origin gone, then with the proxy restarted under the offline policy.
 */

const have = (cmd: string) => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;
const skip = !have('apt-get') || !have('dpkg-deb') || !have('dpkg-scanpackages') ? 'apt-get, dpkg-deb and dpkg-scanpackages are needed (scripts/install-test-peers.sh)' : false;

const PACKAGES = ['cp-hello', 'cp-world'];
const debPath = (name: string) => `/debian/pool/main/c/${name}/${name}_1.0-1_all.deb`;

/** A Debian-shaped repository: two packages built with dpkg-deb, indexed by dpkg-scanpackages, a Release with SHA256 sums. */
function buildRepository(root: string): void {
  const repo = path.join(root, 'debian');
  for (const name of PACKAGES) {
    const src = path.join(root, 'build', name);
    fs.mkdirSync(path.join(src, 'DEBIAN'), { recursive: true });
    fs.mkdirSync(path.join(src, 'usr/share/doc', name), { recursive: true });
    fs.writeFileSync(path.join(src, 'usr/share/doc', name, 'README'), `${name}: a package of the caching-proxy tests\n`.repeat(200));
    fs.writeFileSync(
      path.join(src, 'DEBIAN/control'),
      `Package: ${name}\nVersion: 1.0-1\nArchitecture: all\nMaintainer: Caching Proxy tests <tests@example.invalid>\nDescription: test package ${name}\n`,
    );
    const out = path.join(repo, path.dirname(debPath(name)).replace(/^\/debian\//, ''));
    fs.mkdirSync(out, { recursive: true });
    execFileSync('dpkg-deb', ['--build', '--root-owner-group', src, path.join(repo, debPath(name).replace(/^\/debian\//, ''))], { stdio: 'ignore' });
  }
  const binary = path.join(repo, 'dists/stable/main/binary-amd64');
  fs.mkdirSync(binary, { recursive: true });
  const packages = execFileSync('dpkg-scanpackages', ['--multiversion', 'pool', '/dev/null'], { cwd: repo, stdio: ['ignore', 'pipe', 'ignore'] });
  fs.writeFileSync(path.join(binary, 'Packages'), packages);
  execFileSync('gzip', ['-9nk', path.join(binary, 'Packages')]);
  const files = ['main/binary-amd64/Packages', 'main/binary-amd64/Packages.gz'].map((f) => {
    const data = fs.readFileSync(path.join(repo, 'dists/stable', f));
    return ` ${crypto.createHash('sha256').update(data).digest('hex')} ${String(data.length).padStart(8)} ${f}`;
  });
  fs.writeFileSync(
    path.join(repo, 'dists/stable/Release'),
    `Origin: caching-proxy-tests\nLabel: caching-proxy-tests\nSuite: stable\nCodename: stable\nDate: ${new Date().toUTCString()}\nArchitectures: amd64\nComponents: main\nSHA256:\n${files.join('\n')}\n`,
  );
}

/** apt-get with private configuration, state and cache folders, through the proxy (asynchronous: the proxy runs in this process). */
function aptGet(root: string, run: string, proxyUrl: string, originUrl: string, args: string[]): Promise<{ code: number; output: string }> {
  const dir = path.join(root, run);
  for (const d of ['lists/partial', 'cache/archives/partial', 'etc/apt.conf.d', 'etc/preferences.d', 'etc/sources.list.d', 'download']) fs.mkdirSync(path.join(dir, d), { recursive: true });
  fs.writeFileSync(path.join(dir, 'etc/sources.list'), `deb [trusted=yes] ${originUrl}/debian stable main\n`);
  // The machine's apt.conf.d is left out (it may name other proxies or mirrors): only this.
  fs.writeFileSync(
    path.join(dir, 'apt.conf'),
    [
      `Dir::Etc "${dir}/etc";`,
      `Dir::Etc::Parts "${dir}/etc/apt.conf.d";`,
      `Dir::Etc::SourceList "${dir}/etc/sources.list";`,
      `Dir::Etc::SourceParts "${dir}/etc/sources.list.d";`,
      `Dir::State::Lists "${dir}/lists";`,
      `Dir::Cache "${dir}/cache";`,
      `Dir::Cache::archives "${dir}/cache/archives";`,
      `Acquire::http::Proxy "${proxyUrl}";`,
      'Acquire::Languages "none";',
      'Acquire::Retries "0";',
      'Debug::NoLocking "true";',
      // The private folders are root's: apt's download sandbox user could not write them.
      'APT::Sandbox::User "root";',
      'APT::Architectures { "amd64"; };',
      '',
    ].join('\n'),
  );
  return new Promise((resolve) => {
    execFile('apt-get', ['-q', ...args], { cwd: path.join(dir, 'download'), env: { ...process.env, APT_CONFIG: path.join(dir, 'apt.conf'), DEBIAN_FRONTEND: 'noninteractive' }, encoding: 'utf8', timeout: 120_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : -1) : 0, output: `${stdout}\n${stderr}` });
    });
  });
}

/** One apt round: update, then download both packages; returns the downloaded files' sizes. */
async function aptRound(root: string, run: string, proxy: TestProxy, origin: string): Promise<Record<string, number>> {
  const update = await aptGet(root, run, proxy.url, origin, ['update']);
  assert.equal(update.code, 0, `apt-get update (${run}) failed:\n${update.output}`);
  assert.doesNotMatch(update.output, /^(W|E): /m, `apt-get update (${run}) warned:\n${update.output}`);
  const download = await aptGet(root, run, proxy.url, origin, ['download', ...PACKAGES]);
  assert.equal(download.code, 0, `apt-get download (${run}) failed:\n${download.output}`);
  const got: Record<string, number> = {};
  for (const name of PACKAGES) got[name] = fs.statSync(path.join(root, run, 'download', `${name}_1.0-1_all.deb`)).size;
  return got;
}

test('apt-get through the proxy with the debian preset: the second run gets every .deb from the cache; with the origin gone, and under policy offline after a restart, update and download still succeed', { skip }, async () => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'cp-apt-'));
  const cacheDir = path.join(root, 'proxy-cache');
  let origin: StaticOrigin | null = null;
  let proxy: TestProxy | null = null;
  try {
    buildRepository(root);
    origin = await startStaticOrigin(root);
    const originUrl = origin.url;
    proxy = await startTestProxy({ presets: ['debian'], cache: { dir: cacheDir } });

    const first = await aptRound(root, 'run1', proxy, originUrl);
    for (const name of PACKAGES) assert.equal(origin.count(debPath(name)), 1, `${name} fetched once`);
    const storedRules = proxy.events.filter((e) => e.type === 'cache' && e.action === 'stored').map((e) => (e.type === 'cache' ? e.rule : ''));
    assert.ok(storedRules.includes('debian:package') && storedRules.includes('debian:index'), `stored under the preset: ${storedRules.join(', ')}`);

    // A fresh apt (no lists, no archives): indexes revalidated, every .deb from the cache.
    const second = await aptRound(root, 'run2', proxy, originUrl);
    assert.deepEqual(second, first);
    for (const name of PACKAGES) assert.equal(origin.count(debPath(name)), 1, `${name} came from the cache`);
    const debHits = proxy.events.filter((e) => e.type === 'response' && e.url.endsWith('.deb') && /^hit; /.test(e.cache ?? ''));
    assert.equal(debHits.length, PACKAGES.length);
    assert.ok(debHits.every((e) => e.type === 'response' && e.cache!.includes('rule="debian:package"')));

    // The mirror goes away: stale indexes are served (origin unreachable), the .debs are fresh hits.
    await origin.close();
    origin = null;
    assert.deepEqual(await aptRound(root, 'run3', proxy, originUrl), first);
    assert.ok(proxy.events.some((e) => e.type === 'response' && e.url.endsWith('/Release') && /detail=origin-unreachable/.test(e.cache ?? '')));

    // Restarted offline, from the disk cache.
    await proxy.close();
    proxy = await startTestProxy({ presets: ['debian'], cache: { dir: cacheDir, policy: 'offline' } });
    assert.deepEqual(await aptRound(root, 'run4', proxy, originUrl), first);
  } finally {
    await proxy?.close();
    await origin?.close();
    fs.rmSync(root, { recursive: true, force: true });
  }
});
