import * as assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as vscode from 'vscode';
import { getApi, setSetting, waitFor, type TestApi } from './helpers';

/** The variables that replace a tool's trust store, as the issue names them: each must get the merged bundle. */
const BUNDLE_VARIABLES = ['SSL_CERT_FILE', 'REQUESTS_CA_BUNDLE', 'CURL_CA_BUNDLE', 'GIT_SSL_CAINFO', 'PIP_CERT', 'AWS_CA_BUNDLE', 'CARGO_HTTP_CAINFO', 'DENO_CERT', 'npm_config_cafile'];

function curlExit(args: string[]): Promise<number> {
  return new Promise((resolve) => execFile('curl', ['-sS', ...args], { timeout: 20_000 }, (err) => resolve(err ? Number((err as NodeJS.ErrnoException).code) || 1 : 0)));
}

suite('HTTPS interception', () => {
  let api: TestApi;

  suiteSetup(async () => {
    api = await getApi();
  });

  teardown(async () => {
    await vscode.commands.executeCommand('cachingProxy.stop');
    await setSetting(api, 'https.intercept', undefined);
  });

  test('while interception is on, new terminals trust the local CA: NODE_EXTRA_CA_CERTS and the merged bundle', async () => {
    await setSetting(api, 'https.intercept', ['localhost']);
    await vscode.commands.executeCommand('cachingProxy.start');
    assert.equal(api.controller.state, 'running');
    const caDir = api.settings()!.config.https.caDir;
    assert.match(caDir, /caching-proxy\.caching-proxy[/\\]ca$/, 'the CA lives in the global storage');
    const env = api.terminalEnv;
    assert.equal(env.get('NODE_EXTRA_CA_CERTS')?.value, path.join(caDir, 'ca.pem'));
    assert.ok(new X509Certificate(fs.readFileSync(path.join(caDir, 'ca.pem'))).ca, 'the proxy process made the CA there');
    for (const name of BUNDLE_VARIABLES) assert.equal(env.get(name)?.value, path.join(caDir, 'ca-bundle.pem'), name);
    assert.ok(fs.readFileSync(path.join(caDir, 'ca-bundle.pem'), 'utf8').includes(fs.readFileSync(path.join(caDir, 'ca.pem'), 'utf8').trim()));
    assert.equal((fs.statSync(path.join(caDir, 'ca-key.pem')).mode & 0o777).toString(8), '600');

    // A client that does not trust the CA yet: the user is told how to fix it.
    const before = api.notifications.length;
    assert.equal(await curlExit(['-x', api.controller.address!.url, 'https://localhost:9/']), 60);
    const hint = await waitFor(() => api.notifications.slice(before).find((n) => /rejected the HTTPS certificate for localhost/.test(n.message)), 'the untrusted-CA hint');
    assert.ok(hint.actions.includes('Trust HTTPS Certificate…'));

    // Off again: the variables go, so terminals no longer point at a CA nothing uses.
    await setSetting(api, 'https.intercept', []);
    assert.equal(env.get('NODE_EXTRA_CA_CERTS'), undefined);
    assert.equal(env.get('SSL_CERT_FILE'), undefined);
    assert.ok(env.get('HTTPS_PROXY'), 'the proxy variables stay');
  });

  test('Trust HTTPS Certificate… shows the path and fingerprint and copies the path', async () => {
    const before = api.notifications.length;
    await vscode.commands.executeCommand('cachingProxy.trustCertificate');
    const shown = await waitFor(() => api.notifications.slice(before).find((n) => /local CA/.test(n.message)), 'the certificate notification');
    const certPath = await vscode.env.clipboard.readText();
    assert.match(certPath, /[/\\]ca[/\\]ca\.pem$/);
    const fingerprint = new X509Certificate(fs.readFileSync(certPath)).fingerprint256;
    assert.ok(shown.message.includes(certPath) && shown.message.includes(fingerprint), shown.message);
    assert.deepEqual(shown.actions, ['How to Trust…', 'Copy Fingerprint', 'Reveal File']);
  });
});
