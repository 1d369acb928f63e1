import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as vscode from 'vscode';
import { readSettings } from '../../src/extension/settings';
import { EXTENSION_ID, getApi, setSetting, settings } from './helpers';

suite('Workspace trust', () => {
  teardown(async () => {
    const api = await getApi();
    await setSetting(api, 'host', undefined, vscode.ConfigurationTarget.Workspace);
    await setSetting(api, 'upstreamProxy', undefined, vscode.ConfigurationTarget.Workspace);
    await setSetting(api, 'allowedHosts', undefined, vscode.ConfigurationTarget.Workspace);
    await setSetting(api, 'https.intercept', undefined, vscode.ConfigurationTarget.Workspace);
  });

  test('host, upstreamProxy, allowedHosts and https.intercept are declared restricted for untrusted workspaces', () => {
    const pkg = vscode.extensions.getExtension(EXTENSION_ID)!.packageJSON as {
      capabilities: { untrustedWorkspaces: { supported: string | boolean; restrictedConfigurations: string[] } };
    };
    assert.equal(pkg.capabilities.untrustedWorkspaces.supported, 'limited');
    assert.deepEqual(pkg.capabilities.untrustedWorkspaces.restrictedConfigurations.sort(), ['cachingProxy.allowedHosts', 'cachingProxy.host', 'cachingProxy.https.intercept', 'cachingProxy.upstreamProxy']);
  });

  test('workspace values of host, upstreamProxy and allowedHosts count only in a trusted workspace', async () => {
    const api = await getApi();
    assert.ok(vscode.workspace.workspaceFolders?.length, 'the tests run with a folder open');
    await setSetting(api, 'host', '127.0.0.2', vscode.ConfigurationTarget.Workspace);
    await setSetting(api, 'upstreamProxy', 'http://127.0.0.1:9', vscode.ConfigurationTarget.Workspace);
    // A workspace that widened allowedHosts would let web pages use the proxy under their own names.
    await setSetting(api, 'allowedHosts', ['evil.example'], vscode.ConfigurationTarget.Workspace);
    // A workspace that turned on interception would have the user's HTTPS decrypted.
    await setSetting(api, 'https.intercept', ['*'], vscode.ConfigurationTarget.Workspace);
    await setSetting(api, 'port', 0, vscode.ConfigurationTarget.Workspace);

    const untrusted = readSettings(settings(), { trusted: false, defaultCacheDir: '/tmp/x' });
    assert.equal(untrusted.config.host, '127.0.0.1', 'workspace host ignored');
    assert.equal(untrusted.config.upstreamProxy, null, 'workspace upstream proxy ignored');
    assert.deepEqual(untrusted.config.allowedHosts, [], 'workspace allowed hosts ignored');
    assert.deepEqual(untrusted.config.https.intercept, [], 'workspace interception ignored');
    assert.equal(untrusted.config.port, 0, 'unrestricted workspace values still apply');

    if (vscode.workspace.isTrusted) {
      const trusted = readSettings(settings(), { trusted: true, defaultCacheDir: '/tmp/x' });
      assert.equal(trusted.config.host, '127.0.0.2');
      assert.equal(trusted.config.upstreamProxy, 'http://127.0.0.1:9');
      assert.deepEqual(trusted.config.allowedHosts, ['evil.example']);
      assert.deepEqual(trusted.config.https.intercept, ['*']);
    } else {
      // restrictedConfigurations in effect: the editor itself hides these workspace values.
      assert.equal(settings().get('host'), '127.0.0.1');
      const written = fs.readFileSync(path.join(vscode.workspace.workspaceFolders![0].uri.fsPath, '.vscode', 'settings.json'), 'utf8');
      assert.match(written, /"cachingProxy\.host": "127\.0\.0\.2"/, 'the workspace value is there, just not used');
    }

    // What the extension actually runs with depends on this window's trust (the harness runs
    // this suite twice: trusted, and with workspace trust enabled so the folder is untrusted).
    if (vscode.workspace.isTrusted) {
      assert.equal(api.settings()?.config.host, '127.0.0.2');
      assert.equal(api.settings()?.config.upstreamProxy, 'http://127.0.0.1:9');
      assert.deepEqual(api.settings()?.config.allowedHosts, ['evil.example']);
    } else {
      assert.equal(api.settings()?.config.host, '127.0.0.1');
      assert.equal(api.settings()?.config.upstreamProxy, null);
      assert.deepEqual(api.settings()?.config.allowedHosts, []);
      assert.deepEqual(api.settings()?.config.https.intercept, []);
      assert.equal(api.settings()?.config.port, 0);
      await vscode.commands.executeCommand('cachingProxy.start');
      try {
        assert.equal(api.controller.address?.host, '127.0.0.1', 'the proxy listens where the user settings say');
      } finally {
        await vscode.commands.executeCommand('cachingProxy.stop');
      }
    }
    await setSetting(api, 'port', undefined, vscode.ConfigurationTarget.Workspace);
  });
});
