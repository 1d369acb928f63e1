import * as assert from 'node:assert/strict';
import * as vscode from 'vscode';
import { EXTENSION_ID, getApi } from './helpers';

const ISSUE_COMMANDS = {
  'cachingProxy.start': 'Start Proxy',
  'cachingProxy.stop': 'Stop Proxy',
  'cachingProxy.restart': 'Restart Proxy',
  'cachingProxy.clearCache': 'Clear Cache',
  'cachingProxy.copyProxyUrl': 'Copy Proxy URL',
  'cachingProxy.showLog': 'Show Log',
  'cachingProxy.startRecording': 'Start Recording',
  'cachingProxy.stopRecording': 'Stop Recording',
  'cachingProxy.exportHar': 'Export Cache as HAR…',
  'cachingProxy.importHar': 'Import HAR…',
};
const TREE_COMMANDS = ['cachingProxy.openEntry', 'cachingProxy.revalidateEntry', 'cachingProxy.purgeEntry', 'cachingProxy.purgeHost', 'cachingProxy.copyEntryUrl', 'cachingProxy.copyAsCurl', 'cachingProxy.refresh', 'cachingProxy.filter'];

suite('Activation', () => {
  test('activates and registers every command, with the titles and category of the issue', async () => {
    const api = await getApi();
    assert.ok(api.controller, 'activate() returns the API');
    const registered = new Set(await vscode.commands.getCommands(true));
    const pkg = vscode.extensions.getExtension(EXTENSION_ID)!.packageJSON as {
      contributes: { commands: { command: string; title: string; category: string }[] };
    };
    for (const [id, title] of Object.entries(ISSUE_COMMANDS)) {
      assert.ok(registered.has(id), `${id} is registered`);
      const contributed = pkg.contributes.commands.find((c) => c.command === id);
      assert.deepEqual({ title: contributed?.title, category: contributed?.category }, { title, category: 'Caching Proxy' });
    }
    for (const id of TREE_COMMANDS) assert.ok(registered.has(id), `${id} is registered`);
  });

  test('contributes the view container, the Cached URLs view and its welcome views', () => {
    const pkg = vscode.extensions.getExtension(EXTENSION_ID)!.packageJSON as {
      contributes: {
        viewsContainers: { activitybar: { id: string; title: string; icon: string }[] };
        views: Record<string, { id: string; name: string }[]>;
        viewsWelcome: { view: string; contents: string; when: string }[];
      };
    };
    const container = pkg.contributes.viewsContainers.activitybar.find((c) => c.id === 'cachingProxy');
    assert.equal(container?.title, 'Caching Proxy');
    assert.match(container?.icon ?? '', /^media\/.+\.svg$/);
    assert.deepEqual(pkg.contributes.views.cachingProxy.map((v) => [v.id, v.name]), [['cachingProxy.cachedUrls', 'Cached URLs']]);
    const welcome = pkg.contributes.viewsWelcome.filter((w) => w.view === 'cachingProxy.cachedUrls');
    assert.ok(welcome.some((w) => w.contents.includes('command:cachingProxy.start')), 'a Start Proxy button when stopped');
    assert.ok(welcome.some((w) => /cacheEmpty/.test(w.when)), 'a message when the cache is empty');
  });

  test('starts stopped: status bar says so and terminals are untouched', async () => {
    const api = await getApi();
    assert.equal(api.controller.state, 'stopped');
    assert.match(api.statusBarText(), /Caching Proxy: stopped/);
    assert.equal(api.terminalEnv.get('HTTP_PROXY'), undefined);
    assert.deepEqual(await api.tree.getChildren(), [], 'no tree items (the welcome view shows instead)');
  });
});
