import * as assert from 'node:assert/strict';
import * as vscode from 'vscode';
import { getApi, viaProxy, startOrigin } from './helpers';

// Runs in the harness's second window, which starts with "cachingProxy.autoStart": true.
suite('autoStart', () => {
  test('with cachingProxy.autoStart the proxy is running once the editor has started', async () => {
    assert.equal(vscode.workspace.getConfiguration('cachingProxy').get('autoStart'), true, 'this window is configured to auto-start');
    const api = await getApi();
    assert.equal(api.controller.state, 'running');
    const origin = await startOrigin();
    try {
      assert.equal((await viaProxy(api.controller.address!.port, `${origin.url}/auto`)).status, 200);
    } finally {
      await origin.close();
      await vscode.commands.executeCommand('cachingProxy.stop');
    }
  });
});
