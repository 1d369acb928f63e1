/**
 * Entry the editor loads as `extensionTestsPath`: runs the mocha (TDD) suites inside the real
 * extension host. Used by both runners: code-server (npm run test:e2e) and @vscode/test-electron
 * (npm run test:vscode).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import Mocha from 'mocha';

export function run(): Promise<void> {
  const mocha = new Mocha({ ui: 'tdd', color: false, timeout: 30_000, reporter: 'spec' });
  // The harness picks suites per window (e.g. autoStart needs a window configured for it).
  const grep = process.env.CACHING_PROXY_TEST_GREP;
  if (grep) {
    mocha.grep(new RegExp(grep));
    if (process.env.CACHING_PROXY_TEST_INVERT === '1') mocha.invert();
  }
  for (const file of fs.readdirSync(__dirname).sort()) {
    if (file.endsWith('.test.js')) mocha.addFile(path.join(__dirname, file));
  }
  const resultsFile = process.env.CACHING_PROXY_TEST_RESULTS;
  return new Promise((resolve, reject) => {
    const results: { title: string; state: string; error?: string }[] = [];
    const runner = mocha.run((failures) => {
      if (resultsFile) fs.writeFileSync(resultsFile, JSON.stringify({ failures, results }, null, 2));
      if (failures > 0) reject(new Error(`${failures} extension test(s) failed`));
      else resolve();
    });
    runner.on('pass', (t) => results.push({ title: t.fullTitle(), state: 'passed' }));
    runner.on('fail', (t, err: Error) => results.push({ title: t.fullTitle(), state: 'failed', error: err.stack ?? err.message }));
  });
}
