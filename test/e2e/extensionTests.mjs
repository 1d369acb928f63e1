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

/**
 * Runs the suites (or those matching `grep`) in a fresh code-server; returns { code, passed, failed }.
 * @param {{ name: string, settings?: Record<string, unknown>, grep: string, invert?: boolean }} run
 */
async function runSuites(run) {
  const resultsFile = join(resultsDir, `extension-tests-${run.name}.json`);
  await writeFile(resultsFile, '');
  const server = await startCodeServer({
    name: `ext-${run.name}`,
    // The extension's settings start from defaults except a free port; the suites set the rest.
    settings: { 'cachingProxy.port': 0, ...run.settings },
    env: { CACHING_PROXY_TEST_RESULTS: resultsFile, CACHING_PROXY_TEST_GREP: run.grep, CACHING_PROXY_TEST_INVERT: run.invert ? '1' : '0' },
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
      if (verbose || !/ENOTFOUND|marketplace|gallery|socket|connection token|Service Worker|ChatSessionStore|builtin extensions|\[lifecycle\]/i.test(text)) process.stdout.write(`${text}\n`);
    });
    const payload = [
      ['extensionDevelopmentPath', `vscode-remote://${host}${repo}`],
      ['extensionTestsPath', `vscode-remote://${host}${testsEntry}`],
    ];
    await page.goto(`${server.url}/?folder=${encodeURIComponent(server.dirs.workspace)}&payload=${encodeURIComponent(JSON.stringify(payload))}`);
    const timeout = new Promise((resolve) => setTimeout(() => resolve('timeout'), 240_000).unref());
    const outcome = await Promise.race([exited, timeout]);
    if (outcome === 'timeout') {
      await page.screenshot({ path: join(resultsDir, `extension-tests-${run.name}-timeout.png`) }).catch(() => {});
      console.error(`extension tests (${run.name}): no result within 240 s`);
    } else {
      code = Number(outcome);
    }
  } finally {
    await browser.close();
    await server.stop();
  }
  const text = await readFile(resultsFile, 'utf8').catch(() => '');
  if (!text) {
    console.error(`extension tests (${run.name}): no results were written`);
    return { code: 1, passed: 0, failed: [] };
  }
  const { results } = JSON.parse(text);
  const failed = results.filter((r) => r.state === 'failed');
  for (const f of failed) console.error(`\nFAILED (${run.name}) ${f.title}\n${f.error}`);
  return { code: failed.length ? 1 : code, passed: results.filter((r) => r.state === 'passed').length, failed };
}

const trusted = await runSuites({ name: 'trusted', grep: '^autoStart ', invert: true });
// A second window: the folder is not trusted (restricted mode) and the proxy starts by itself.
const untrusted = await runSuites({
  name: 'untrusted',
  grep: '^(autoStart|Workspace trust) ',
  settings: {
    'cachingProxy.autoStart': true,
    'security.workspace.trust.enabled': true,
    'security.workspace.trust.startupPrompt': 'never',
    'security.workspace.trust.emptyWindow': false,
  },
});
console.log(`extension tests (inside code-server's extension host): ${trusted.passed + untrusted.passed} passed, ${trusted.failed.length + untrusted.failed.length} failed (trusted window ${trusted.passed}/${trusted.passed + trusted.failed.length}, untrusted auto-start window ${untrusted.passed}/${untrusted.passed + untrusted.failed.length})`);
process.exit(trusted.code || untrusted.code);
