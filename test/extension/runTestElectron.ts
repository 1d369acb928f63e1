/**
 * `npm run test:vscode`: the ecosystem's standard runner. Downloads VS Code (needs internet) and
 * runs the same mocha suites as the code-server layer inside its extension host.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { runTests } from '@vscode/test-electron';

async function main(): Promise<void> {
  const repo = path.resolve(__dirname, '..', '..', '..');
  const workspace = fs.mkdtempSync(path.join(os.tmpdir(), 'caching-proxy-vscode-'));
  const userData = fs.mkdtempSync(path.join(os.tmpdir(), 'caching-proxy-vscode-user-'));
  fs.mkdirSync(path.join(userData, 'User'), { recursive: true });
  // Never the default port 8899 on a shared machine: the suites pick free ports themselves.
  fs.writeFileSync(path.join(userData, 'User', 'settings.json'), JSON.stringify({ 'cachingProxy.port': 0, 'workbench.startupEditor': 'none' }));
  await runTests({
    version: process.env.VSCODE_TEST_VERSION ?? 'stable',
    extensionDevelopmentPath: repo,
    extensionTestsPath: path.join(__dirname, 'index.js'),
    // The autoStart suite needs a window configured for it; the code-server harness runs it separately.
    extensionTestsEnv: { CACHING_PROXY_TEST_GREP: '^autoStart ', CACHING_PROXY_TEST_INVERT: '1' },
    launchArgs: [workspace, '--disable-extensions', '--disable-workspace-trust', '--user-data-dir', userData],
  });
}

main().catch((err: Error) => {
  console.error(`test:vscode failed: ${err.message}`);
  process.exit(1);
});
