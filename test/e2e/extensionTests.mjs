// Layer 1: the mocha suites of test/extension run INSIDE the real extension host of code-server.
// Exit code 0 when they all pass.
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { format } from 'node:util';
import { startCodeServer, launchBrowser } from './codeServer.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const repo = resolve(here, '..', '..');
const testsEntry = join(repo, 'out', 'test', 'extension', 'index.js');
const resultsDir = join(repo, 'test-results');
const verbose = !!process.env.E2E_VERBOSE;

if (!existsSync(join(repo, 'dist', 'extension.js')) || !existsSync(testsEntry)) {
  console.error('extension tests: build first (npm run build && npm run compile-extension-tests)');
  process.exit(2);
}
await mkdir(resultsDir, { recursive: true });
const resultsFile = join(resultsDir, 'extension-tests.json');
await writeFile(resultsFile, '');

const server = await startCodeServer({
  name: 'ext',
  // The extension's settings start from defaults except a free port; the suites set the rest.
  settings: { 'cachingProxy.port': 0 },
  env: { CACHING_PROXY_TEST_RESULTS: resultsFile },
  log: verbose ? (l) => console.log(`[code-server] ${l}`) : undefined,
});
const browser = await launchBrowser();
let code = 1;
try {
  const page = await browser.context.newPage();
  const host = new URL(server.url).host;
  const exited = new Promise((resolve) => page.exposeFunction('codeAutomationExit', (c) => resolve(c)));
  await page.exposeFunction('codeAutomationLog', (type, args) => {
    const text = format(...(Array.isArray(args) ? args : [args]));
    if (verbose || !/ENOTFOUND|marketplace|gallery/i.test(text)) process.stdout.write(`${text}\n`);
  });
  const payload = [
    ['extensionDevelopmentPath', `vscode-remote://${host}${repo}`],
    ['extensionTestsPath', `vscode-remote://${host}${testsEntry}`],
  ];
  await page.goto(`${server.url}/?folder=${encodeURIComponent(server.dirs.workspace)}&payload=${encodeURIComponent(JSON.stringify(payload))}`);
  const timeout = new Promise((resolve) => setTimeout(() => resolve('timeout'), 240_000).unref());
  const outcome = await Promise.race([exited, timeout]);
  if (outcome === 'timeout') {
    await page.screenshot({ path: join(resultsDir, 'extension-tests-timeout.png') }).catch(() => {});
    console.error('extension tests: no result within 240 s');
  } else {
    code = Number(outcome);
  }
} finally {
  await browser.close();
  await server.stop();
}

const text = await readFile(resultsFile, 'utf8').catch(() => '');
if (text) {
  const { results } = JSON.parse(text);
  const passed = results.filter((r) => r.state === 'passed').length;
  const failed = results.filter((r) => r.state === 'failed');
  for (const f of failed) console.error(`\nFAILED ${f.title}\n${f.error}`);
  console.log(`extension tests (inside code-server's extension host): ${passed} passed, ${failed.length} failed`);
  if (failed.length) code = 1;
} else {
  console.error('extension tests: no results were written');
  code = 1;
}
process.exit(code);
