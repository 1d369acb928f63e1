// Layer 2: drives the workbench of a real VS Code (code-server) from headless Chromium, as a user
// would, with the extension installed from the packaged .vsix. Screenshots go to test-results/.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createServer } from 'node:http';
import { mkdir, readdir, readFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import * as net from 'node:net';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startCodeServer, launchBrowser } from './codeServer.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const repo = resolve(here, '..', '..');
const vsix = join(repo, 'caching-proxy.vsix');
const shots = join(repo, 'test-results');

/** @type {Awaited<ReturnType<typeof startCodeServer>>} */ let server;
/** @type {Awaited<ReturnType<typeof launchBrowser>>} */ let browser;
/** @type {import('playwright-core').Page} */ let page;
let origin;
let originUrl = '';
let firstPort = 0;
let secondPort = 0;
const originHits = new Map();

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

function curl(args) {
  return new Promise((resolve) => {
    execFile('curl', ['-sS', '--max-time', '10', ...args], { encoding: 'utf8' }, (err, stdout, stderr) => resolve({ code: err ? (err.code ?? 1) : 0, stdout, stderr }));
  });
}

async function screenshot(name) {
  await page.screenshot({ path: join(shots, `ui-${name}.png`) });
}

/** Runs a command from the command palette, typed as a user types it. */
async function runCommand(title) {
  const input = page.locator('.quick-input-widget input');
  // The palette closes when something takes focus as it opens (a notification or an editor of
  // the previous step, seen under load): open it again, up to three times.
  for (let attempt = 1; ; attempt++) {
    await page.keyboard.press('F1');
    await input.waitFor({ state: 'visible' });
    try {
      await input.fill(`>${title}`, { timeout: 5_000 });
      break;
    } catch (err) {
      if (attempt === 3) throw err;
      await page.keyboard.press('Escape');
    }
  }
  const row = page.locator('.quick-input-list .monaco-list-row', { hasText: title }).first();
  await row.waitFor({ state: 'visible' });
  await page.keyboard.press('Enter');
  await input.waitFor({ state: 'hidden' });
}

/** Opens the view from its activity-bar icon (a second click would close it again). */
async function openCachedUrlsView() {
  const header = page.locator('.sidebar .pane-header', { hasText: /Cached URLs/i });
  const title = page.locator('.sidebar .composite.title', { hasText: /Caching Proxy/i });
  if ((await title.count()) > 0 && (await title.first().isVisible())) return;
  await page.locator('.activitybar .action-item a[aria-label^="Caching Proxy"], .activitybar .action-item[aria-label^="Caching Proxy"]').first().click();
  await title.first().or(header.first()).first().waitFor();
}

/** Drags the sidebar's edge so the entries' descriptions fit, as a user would. */
async function widenSidebar() {
  const box = await page.locator('.part.sidebar').boundingBox();
  if (!box || box.width > 500) return;
  const y = box.y + box.height / 2;
  await page.mouse.move(box.x + box.width - 1, y);
  await page.mouse.down();
  await page.mouse.move(box.x + box.width + 260, y, { steps: 5 });
  await page.mouse.up();
}

const statusItem = (text) => page.locator('.statusbar-item', { hasText: text });
const treeRow = (label) => page.locator('.pane-body .monaco-list-row', { has: page.locator('.label-name', { hasText: new RegExp(`^${label.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`) }) });

before(async () => {
  assert.ok(existsSync(vsix), 'npm run package first');
  await mkdir(shots, { recursive: true });
  origin = createServer((req, res) => {
    originHits.set(req.url, (originHits.get(req.url) ?? 0) + 1);
    const json = req.url.endsWith('.json');
    res.writeHead(200, { 'content-type': json ? 'application/json' : 'text/plain', 'cache-control': 'max-age=600' });
    res.end(json ? JSON.stringify({ path: req.url, ok: true }) : `hello from ${req.url}\n`);
  });
  await new Promise((r) => origin.listen(0, '127.0.0.1', r));
  originUrl = `http://127.0.0.1:${origin.address().port}`;
  firstPort = await freePort();
  server = await startCodeServer({ name: 'ui', vsix, settings: { 'cachingProxy.port': firstPort, 'workbench.colorTheme': 'Default Dark Modern' } });
  browser = await launchBrowser();
  page = await browser.context.newPage();
  await page.goto(`${server.url}/?folder=${encodeURIComponent(server.dirs.workspace)}`);
  await page.locator('.monaco-workbench').waitFor({ timeout: 60_000 });
  // The status bar item appears once the extension (installed from the .vsix) has activated.
  await statusItem('Caching Proxy: stopped').waitFor({ timeout: 60_000 });
});

after(async () => {
  if (page) await screenshot('last').catch(() => {});
  await browser?.close();
  await server?.stop();
  await new Promise((r) => (origin ? origin.close(r) : r()));
});

test('"Caching Proxy: Start Proxy" from the command palette starts the proxy on the configured port', async () => {
  await runCommand('Caching Proxy: Start Proxy');
  await statusItem(`127.0.0.1:${firstPort}`).waitFor();
  const res = await curl(['-x', `http://127.0.0.1:${firstPort}`, `${originUrl}/hello.txt`]);
  assert.equal(res.stdout, 'hello from /hello.txt\n');
  // A click on the status bar item offers the commands that fit the state.
  await statusItem(`127.0.0.1:${firstPort}`).click();
  await page.locator('.quick-input-list .monaco-list-row', { hasText: 'Stop Proxy' }).waitFor();
  await screenshot('started');
  await page.keyboard.press('Escape');
});

test('requests sent with curl through the proxy appear in the Cached URLs view', async () => {
  for (const path of ['/api/users.json', '/api/users.json', '/docs/readme.txt']) {
    const res = await curl(['-x', `http://127.0.0.1:${firstPort}`, originUrl + path]);
    assert.equal(res.code, 0, res.stderr);
  }
  assert.equal(originHits.get('/api/users.json'), 1, 'the second request was served from the cache');
  // Open the view from its activity-bar icon.
  await openCachedUrlsView();
  await treeRow('/api/users.json').waitFor();
  await widenSidebar();
  await treeRow('/docs/readme.txt').waitFor();
  await treeRow('/hello.txt').waitFor();
  const row = treeRow('/api/users.json');
  assert.match(await row.locator('.label-description').innerText(), /^200 · \d+ B · fresh (9|10)m · 1 hit$/);
  await statusItem('1 hit').waitFor();
  await screenshot('cached-urls');
});

test('the output channel shows one line per request', async () => {
  await runCommand('Caching Proxy: Show Log');
  const lines = page.locator('.panel .monaco-editor .view-lines');
  const expected = `GET ${originUrl}/api/users.json 200`;
  await page.waitForFunction(
    (text) => [...document.querySelectorAll('.panel .monaco-editor .view-lines')].some((el) => el.textContent.replace(/\u00a0/g, ' ').includes(text)),
    expected,
  );
  const text = (await lines.first().textContent()).replace(/\u00a0/g, ' ');
  assert.match(text, /\[info\] #\d+ GET http:\/\/127\.0\.0\.1:\d+\/docs\/readme\.txt 200/);
  await screenshot('output');
});

test('clicking a URL opens its stored response: status line, headers, pretty JSON', async () => {
  await treeRow('/api/users.json').click();
  await page.waitForFunction(() => {
    const text = [...document.querySelectorAll('.editor-group-container .monaco-editor .view-lines')].map((el) => el.textContent.replace(/\u00a0/g, ' ')).join('\n');
    return text.includes('HTTP/1.1 200 OK') && text.includes('"ok": true');
  });
  await page.locator('.tabs-container .tab', { hasText: 'users.json' }).waitFor();
  await screenshot('stored-response');
});

test('the Filter title action narrows the view; Clear Filter brings everything back', async () => {
  await page.locator('.sidebar .action-label[aria-label="Filter Cached URLs"]').first().click();
  const input = page.locator('.quick-input-widget input');
  await input.waitFor({ state: 'visible' });
  await input.fill('users');
  await page.keyboard.press('Enter');
  await treeRow('/hello.txt').waitFor({ state: 'detached' });
  await treeRow('/api/users.json').waitFor();
  await page.locator('.sidebar .title-label', { hasText: /matching "users"/i }).waitFor();
  await screenshot('filtered');
  await page.locator('.sidebar .action-label[aria-label="Clear Filter"]').first().click();
  await treeRow('/hello.txt').waitFor();
});

test('Purge from the context menu removes the URL; the next request goes to the origin', async () => {
  await treeRow('/docs/readme.txt').click({ button: 'right' });
  const purge = page.locator('.context-view .action-item', { has: page.locator('.action-label', { hasText: /^Purge$/ }) });
  await purge.waitFor();
  await screenshot('context-menu');
  await purge.click();
  await treeRow('/docs/readme.txt').waitFor({ state: 'detached' });
  await treeRow('/api/users.json').waitFor();
  const before = originHits.get('/docs/readme.txt');
  await curl(['-x', `http://127.0.0.1:${firstPort}`, `${originUrl}/docs/readme.txt`]);
  assert.equal(originHits.get('/docs/readme.txt'), before + 1);
  await screenshot('purged');
});

test('Start Recording: the save dialog, the status bar shows recording, Stop Recording names the count and the file', async () => {
  await runCommand('Caching Proxy: Start Recording');
  // The save dialog proposes recording-<time>.har in the workspace folder: accept it.
  const input = page.locator('.quick-input-widget input');
  await input.waitFor({ state: 'visible' });
  // The simple dialog shows the folder first and fills the proposed name in a moment later.
  let proposed = '';
  for (const deadline = Date.now() + 10_000; Date.now() < deadline; await page.waitForTimeout(100)) {
    proposed = await input.inputValue();
    if (/recording-[\d-T]+\.har$/.test(proposed)) break;
  }
  assert.match(proposed, /recording-[\d-T]+\.har$/);
  await page.keyboard.press('Enter');
  await page.locator('.notifications-toasts .notification-toast', { hasText: 'recording every exchange to' }).waitFor();
  await statusItem('recording').waitFor();
  await screenshot('recording');
  for (const p of ['/recorded-1.txt', '/recorded-2.json']) assert.equal((await curl(['-x', `http://127.0.0.1:${firstPort}`, `${originUrl}${p}`])).code, 0);
  await runCommand('Caching Proxy: Stop Recording');
  const toast = page.locator('.notifications-toasts .notification-toast', { hasText: 'recorded 2 exchanges to' });
  await toast.waitFor();
  const file = /recorded 2 exchanges to (\S+\.har)\./.exec(await toast.innerText())?.[1];
  assert.ok(file?.startsWith(server.dirs.workspace), file);
  const har = JSON.parse(await readFile(file, 'utf8'));
  assert.deepEqual(har.log.entries.map((e) => new URL(e.request.url).pathname), ['/recorded-1.txt', '/recorded-2.json']);
  assert.equal(await statusItem('recording').count(), 0);
});

test('changing cachingProxy.port in the Settings editor moves the proxy', async () => {
  secondPort = await freePort();
  await runCommand('Preferences: Open Settings (UI)');
  const search = page.locator('.settings-editor .suggest-input-container .monaco-editor textarea');
  await search.waitFor();
  await search.focus();
  await page.keyboard.type('cachingProxy.port');
  const input = page.locator('.settings-editor .setting-item-contents', { hasText: 'Port the proxy listens on' }).locator('input');
  await input.waitFor();
  await input.fill(String(secondPort));
  await statusItem(`127.0.0.1:${secondPort}`).waitFor({ timeout: 15_000 });
  const moved = await curl(['-x', `http://127.0.0.1:${secondPort}`, `${originUrl}/after-move.txt`]);
  assert.equal(moved.stdout, 'hello from /after-move.txt\n');
  const old = await curl(['-x', `http://127.0.0.1:${firstPort}`, `${originUrl}/old-port.txt`]);
  assert.notEqual(old.code, 0, 'nothing listens on the old port any more');
  await screenshot('settings-port');
});

test('Stop Proxy: status bar and the welcome view offer Start again', async () => {
  await runCommand('Caching Proxy: Stop Proxy');
  await statusItem('Caching Proxy: stopped').waitFor();
  await openCachedUrlsView();
  await page.locator('.welcome-view-content', { hasText: 'The caching proxy is stopped.' }).waitFor();
  const res = await curl(['-x', `http://127.0.0.1:${secondPort}`, `${originUrl}/stopped.txt`]);
  assert.notEqual(res.code, 0);
  await screenshot('stopped');
});

test('a port in use: the error notification says so and "Use a Free Port" starts the proxy elsewhere', async () => {
  const blocker = net.createServer();
  await new Promise((r) => blocker.listen(secondPort, '127.0.0.1', r));
  try {
    await runCommand('Caching Proxy: Start Proxy');
    const toast = page.locator('.notifications-toasts .notification-toast', { hasText: `port ${secondPort} on 127.0.0.1 is already in use` });
    await toast.waitFor();
    await toast.locator('.monaco-button', { hasText: 'Open Setting' }).waitFor();
    await page.waitForTimeout(400); // let the toast finish sliding in, for the picture only
    await screenshot('port-in-use');
    await toast.locator('.monaco-button', { hasText: 'Use a Free Port' }).click();
    const running = statusItem(/127\.0\.0\.1:\d+ · \d+ hits?/);
    await running.waitFor();
    const port = Number(/:(\d+)/.exec(await running.innerText())[1]);
    assert.notEqual(port, secondPort);
    const res = await curl(['-x', `http://127.0.0.1:${port}`, `${originUrl}/free-port.txt`]);
    assert.equal(res.stdout, 'hello from /free-port.txt\n');
    await runCommand('Caching Proxy: Stop Proxy');
    await statusItem('Caching Proxy: stopped').waitFor();
  } finally {
    await new Promise((r) => blocker.close(r));
  }
});

/** Pids of proxy processes forked from this code-server's installed extension. */
async function proxyProcesses() {
  const found = [];
  for (const name of await readdir('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const cmdline = await readFile(`/proc/${name}/cmdline`, 'utf8').catch(() => '');
    if (cmdline.includes(server.dirs.extensions) && cmdline.includes('dist/cli.js')) {
      const stat = await readFile(`/proc/${name}/stat`, 'utf8').catch(() => '');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      found.push({ pid: Number(name), ppid });
    }
  }
  return found;
}

test('when the extension host dies, the proxy process exits and frees its port', async () => {
  await runCommand('Caching Proxy: Start Proxy');
  const running = statusItem(/127\.0\.0\.1:\d+ · \d+ hits?/);
  await running.waitFor();
  const port = Number(/:(\d+)/.exec(await running.innerText())[1]);
  const [proxy] = await proxyProcesses();
  assert.ok(proxy, 'the proxy runs as its own process');
  process.kill(proxy.ppid, 'SIGKILL'); // the extension host, as if it crashed
  const deadline = Date.now() + 15_000;
  while ((await proxyProcesses()).some((p) => p.pid === proxy.pid)) {
    assert.ok(Date.now() < deadline, 'the orphaned proxy process is still running');
    await new Promise((r) => setTimeout(r, 100));
  }
  const res = await curl(['-x', `http://127.0.0.1:${port}`, `${originUrl}/orphan.txt`]);
  assert.notEqual(res.code, 0, 'nothing listens on the port any more');
});
