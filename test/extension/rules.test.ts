import * as assert from 'node:assert/strict';
import * as vscode from 'vscode';
import { getApi, setSetting, startOrigin, viaProxy, waitFor, type Origin, type TestApi } from './helpers';

suite('Rules and presets', () => {
  let api: TestApi;
  let origin: Origin;

  suiteSetup(async () => {
    api = await getApi();
    origin = await startOrigin();
  });

  teardown(async () => {
    await vscode.commands.executeCommand('cachingProxy.stop');
    await setSetting(api, 'rules', undefined);
    await setSetting(api, 'presets', undefined);
  });

  suiteTeardown(() => origin.close());

  test('cachingProxy.rules apply live and name themselves; an invalid rule is reported by index and field, and the previous rules stay in force', async () => {
    await vscode.commands.executeCommand('cachingProxy.start');
    const port = api.controller.address!.port;
    await setSetting(api, 'rules', [{ name: 'editor-rule', match: '127.0.0.1/ruled/**', ttl: '1h' }]);
    assert.equal(api.controller.config?.rules[0]?.ttl, 3600);
    const first = await viaProxy(port, `${origin.url}/ruled/a.txt`);
    assert.match(String(first.headers['cache-status']), /rule="editor-rule"$/);
    const entry = await waitFor(async () => (await api.controller.list()).find((e) => e.url.endsWith('/ruled/a.txt')), 'the entry to be stored');
    assert.equal(entry.rule, 'editor-rule', 'the Cached URLs view gets the rule with the entry');

    const before = api.notifications.length;
    await setSetting(api, 'rules', [{ name: 'typo', match: '127.0.0.1/**', ttl: 'soon' }]);
    const shown = api.notifications.slice(before).find((n) => n.level === 'error');
    assert.match(shown?.message ?? '', /^Caching Proxy: invalid setting\. cachingProxy\.rules\[0\] \("typo"\)\.ttl: "soon" is invalid; expected a duration.* The previous rules and presets stay in force; the other settings apply\.$/);
    const still = await viaProxy(port, `${origin.url}/ruled/b.txt`);
    assert.match(String(still.headers['cache-status']), /rule="editor-rule"$/, 'the previous rules are still in force');

    // The other settings still apply while the rules are invalid.
    await setSetting(api, 'presets', ['npm', 'debian']);
    assert.deepEqual(api.controller.config?.presets, ['npm', 'debian']);
    assert.equal(api.controller.config?.rules[0]?.name, 'editor-rule');
  });
});
