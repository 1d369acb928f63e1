import * as assert from 'node:assert/strict';
import * as vscode from 'vscode';
import { alive, getApi, portAccepts, setSetting, waitFor } from './helpers';

suite('Proxy process crash', () => {
  test('a crash is reported with a notification and a log line, and Start works again', async () => {
    const api = await getApi();
    await setSetting(api, 'port', 0);
    await vscode.commands.executeCommand('cachingProxy.start');
    assert.equal(api.controller.state, 'running');
    const pid = api.controller.pid!;
    const port = api.controller.address!.port;
    const before = api.notifications.length;

    process.kill(pid, 'SIGKILL');

    const shown = await waitFor(() => api.notifications.slice(before).find((n) => n.level === 'error'), 'the crash notification');
    assert.match(shown.message, /Caching Proxy stopped unexpectedly \(signal SIGKILL\)/);
    assert.deepEqual(shown.actions, ['Start Proxy', 'Show Log']);
    assert.ok(api.logLines.some((l) => l.startsWith('error') && l.includes('stopped unexpectedly')), 'an error line in the log');
    assert.equal(api.controller.state, 'stopped');
    assert.match(api.statusBarText(), /stopped/);
    assert.equal(api.terminalEnv.get('HTTP_PROXY'), undefined, 'terminals no longer point at a dead proxy');
    assert.equal(alive(pid), false);
    assert.equal(await portAccepts(port), false);

    await vscode.commands.executeCommand('cachingProxy.start');
    assert.equal(api.controller.state, 'running');
    assert.notEqual(api.controller.pid, pid);
    await vscode.commands.executeCommand('cachingProxy.stop');
  });
});
