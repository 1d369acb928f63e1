// Path-style addressing in a real browser: Debian's Chromium, headless, with no proxy settings
// (so it talks to http://127.0.0.1:PORT/site/... directly, as a user browsing path-style does).
// A page opened path-style loads with its subresources; a page on another origin, and a page
// whose name resolves to 127.0.0.1 (DNS rebinding), cannot use the proxy, and the origin behind
// it sees nothing. The proxy is the real CLI (dist/cli.js).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createServer } from 'node:http';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';
import { CHROMIUM } from './codeServer.mjs';

const require = createRequire(import.meta.url);
const here = dirname(fileURLToPath(import.meta.url));
const cli = resolve(here, '..', '..', 'dist', 'cli.js');
const PNG = Buffer.from('iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==', 'base64');

let origin;
let attacker;
let proxy;
let proxyLog = '';
let proxyPort = 0;
let originPort = 0;
let attackerPort = 0;
let browser;
let profile;
const originHits = new Map();

/** The intranet-like site behind the proxy: a page with a relative image, a root-relative stylesheet, a script that fetches. */
const SITE = {
  '/site/page.html': ['text/html', '<!doctype html><html><head><link rel="stylesheet" href="/style.css"></head><body><img id="logo" src="logo.png"><div id="out">waiting</div><script src="app.js"></script></body></html>'],
  '/site/logo.png': ['image/png', PNG],
  '/site/app.js': ['text/javascript', "fetch('data.json').then((r) => r.json()).then((d) => { document.getElementById('out').textContent = d.message; });"],
  '/site/data.json': ['application/json', JSON.stringify({ message: 'data through the proxy' })],
  '/style.css': ['text/css', 'body { background-color: rgb(1, 2, 3); }'],
};

function listen(server) {
  return new Promise((r) => server.listen(0, '127.0.0.1', () => r(server.address().port)));
}

/** The page on another origin: an <img>, a fetch (no-cors and cors) and a form POST at the proxy's path-style URLs. */
function attackPage() {
  const target = `http://127.0.0.1:${proxyPort}/127.0.0.1:${originPort}`;
  return `<!doctype html><html><body>
<img src="${target}/secret-img">
<iframe name="sink"></iframe>
<form id="f" method="POST" action="${target}/secret-form" target="sink"><input name="amount" value="1000"></form>
<script>
fetch('${target}/secret-fetch', { mode: 'no-cors' }).catch(() => {});
fetch('${target}/secret-cors', { method: 'POST', body: 'x' }).catch(() => {});
document.getElementById('f').submit();
</script></body></html>`;
}

async function waitFor(predicate, what, timeoutMs = 20_000) {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}\nproxy log:\n${proxyLog}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

before(async () => {
  origin = createServer((req, res) => {
    originHits.set(req.url, (originHits.get(req.url) ?? 0) + 1);
    const entry = SITE[req.url];
    if (!entry) {
      res.writeHead(200, { 'content-type': 'text/plain' });
      return res.end(`secret ${req.url}`);
    }
    res.writeHead(200, { 'content-type': entry[0] });
    res.end(entry[1]);
  });
  originPort = await listen(origin);
  attacker = createServer((req, res) => {
    res.writeHead(200, { 'content-type': 'text/html' });
    res.end(attackPage());
  });
  attackerPort = await listen(attacker);

  proxy = spawn(process.execPath, [cli, '--port', '0', '--memory-only'], { stdio: ['ignore', 'pipe', 'pipe'] });
  proxy.stdout.on('data', (c) => (proxyLog += c));
  proxy.stderr.on('data', (c) => (proxyLog += c));
  await waitFor(() => /listening on http:\/\/127\.0\.0\.1:(\d+)/.test(proxyLog), 'the proxy to listen', 10_000);
  proxyPort = Number(/listening on http:\/\/127\.0\.0\.1:(\d+)/.exec(proxyLog)[1]);

  profile = await mkdtemp(join(tmpdir(), 'caching-proxy-pathstyle-'));
  const { chromium } = require('playwright-core');
  // No --proxy-server: path-style browsing is the browser talking to 127.0.0.1 itself.
  // evil.test resolves to 127.0.0.1, as a rebinding attacker's name does after its TTL ran out.
  browser = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage', '--host-resolver-rules=MAP evil.test 127.0.0.1'],
  });
});

after(async () => {
  await browser?.close().catch(() => {});
  if (proxy && proxy.exitCode === null) {
    proxy.kill('SIGTERM');
    await new Promise((r) => proxy.once('exit', r));
  }
  await new Promise((r) => (origin ? origin.close(r) : r()));
  await new Promise((r) => (attacker ? attacker.close(r) : r()));
  if (profile) await rm(profile, { recursive: true, force: true });
});

test('a page opened path-style loads with its image, root-relative stylesheet and fetched data', async () => {
  const page = await browser.newPage();
  try {
    const response = await page.goto(`http://127.0.0.1:${proxyPort}/127.0.0.1:${originPort}/site/page.html`);
    assert.equal(response.status(), 200);
    await page.waitForFunction(() => document.getElementById('out')?.textContent !== 'waiting', null, { timeout: 20_000 });
    assert.equal(await page.textContent('#out'), 'data through the proxy');
    await page.waitForFunction(() => document.getElementById('logo').complete, null, { timeout: 20_000 });
    assert.equal(await page.evaluate(() => document.getElementById('logo').naturalWidth), 1, 'the relative image loaded');
    assert.equal(await page.evaluate(() => getComputedStyle(document.body).backgroundColor), 'rgb(1, 2, 3)', 'the root-relative stylesheet loaded (307 onto the site)');
    for (const path of Object.keys(SITE)) assert.ok(originHits.get(path) >= 1, `the origin served ${path}`);
  } finally {
    await page.close();
  }
});

test("a page on another origin cannot use the proxy: its <img>, fetches and form POST are refused, the origin sees none", async () => {
  const page = await browser.newPage();
  const paths = ['/secret-img', '/secret-fetch', '/secret-cors', '/secret-form'];
  try {
    // localhost:OTHER is another site than 127.0.0.1:PROXY, as any web page is.
    await page.goto(`http://localhost:${attackerPort}/evil.html`);
    const seen = (path) => originHits.has(path) || proxyLog.includes(`/127.0.0.1:${originPort}${path} 403`);
    await waitFor(() => paths.every(seen), 'each request from the page to reach the proxy');
    for (const path of paths) {
      assert.equal(originHits.get(path) ?? 0, 0, `the origin never saw ${path}`);
      assert.match(proxyLog, new RegExp(`(GET|POST) /127\\.0\\.0\\.1:${originPort}${path} 403 Forbidden: a path-style request from another web page \\(Sec-Fetch-Site: cross-site\\)`));
    }
  } finally {
    await page.close();
  }
});

test('DNS rebinding: a page under a foreign name resolving to 127.0.0.1 gets 421, the origin sees nothing', async () => {
  const page = await browser.newPage();
  try {
    const response = await page.goto(`http://evil.test:${proxyPort}/127.0.0.1:${originPort}/rebound`);
    assert.equal(response.status(), 421);
    assert.match(await page.textContent('body'), /cachingProxy\.allowedHosts/);
    assert.equal(originHits.get('/rebound') ?? 0, 0);
  } finally {
    await page.close();
  }
});
