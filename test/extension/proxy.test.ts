import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as vscode from 'vscode';
import type { CacheNode, EntryNode, HostNode } from '../../src/extension/cachedUrlsTree';
import type { CachingProxyApi } from '../../src/extension/extension';
import { alive, getApi, portAccepts, setSetting, startOrigin, viaProxy, waitFor, type Origin, type TestApi } from './helpers';

/** Tree rows as a user reads them: host label -> [path label, description]. */
async function treeRows(api: CachingProxyApi): Promise<Map<string, [string, string][]>> {
  api.tree.refresh();
  const rows = new Map<string, [string, string][]>();
  for (const host of (await api.tree.getChildren()) as HostNode[]) {
    const children = (await api.tree.getChildren(host)) as EntryNode[];
    rows.set(
      String(api.tree.getTreeItem(host).label),
      children.map((c) => {
        const item = api.tree.getTreeItem(c);
        return [String(item.label), String(item.description)];
      }),
    );
  }
  return rows;
}

async function entryNode(api: CachingProxyApi, pathLabel: string): Promise<EntryNode | undefined> {
  for (const host of await api.tree.getChildren()) {
    for (const child of await api.tree.getChildren(host)) {
      if (child.kind === 'entry' && api.tree.getTreeItem(child).label === pathLabel) return child;
    }
  }
  return undefined;
}

async function waitForEntry(api: CachingProxyApi, pathLabel: string): Promise<EntryNode> {
  return waitFor(async () => {
    api.tree.refresh();
    return entryNode(api, pathLabel);
  }, `${pathLabel} in the Cached URLs tree`);
}

suite('Proxy lifecycle, tree and commands', () => {
  let api: TestApi;
  let origin: Origin;
  let port = 0;

  suiteSetup(async () => {
    api = await getApi();
    origin = await startOrigin();
    await setSetting(api, 'port', 0);
    await setSetting(api, 'cache.dir', path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'cp-ext-')), 'cache'));
  });

  suiteTeardown(async () => {
    await vscode.commands.executeCommand('cachingProxy.stop');
    await setSetting(api, 'cache.dir', undefined);
    await origin.close();
  });

  test('Start Proxy runs the proxy in its own process and shows where it listens', async () => {
    await vscode.commands.executeCommand('cachingProxy.start');
    assert.equal(api.controller.state, 'running');
    assert.ok(api.controller.pid && api.controller.pid !== process.pid, 'a separate process');
    port = api.controller.address!.port;
    assert.ok(port > 0);
    assert.equal(api.statusBarText(), `$(radio-tower) 127.0.0.1:${port} · 0 hits`);
    const res = await viaProxy(port, `${origin.url}/hello.txt`);
    assert.equal(res.status, 200);
    assert.equal(res.text, 'hello from /hello.txt');
    await waitFor(() => api.logLines.find((l) => l.startsWith('info') && l.includes(`GET ${origin.url}/hello.txt 200`)), 'the request line in the log');
  });

  test('new terminals get the proxy environment', async () => {
    const url = api.controller.address!.url;
    for (const name of ['HTTP_PROXY', 'HTTPS_PROXY', 'http_proxy', 'https_proxy']) assert.equal(api.terminalEnv.get(name)?.value, url, name);
    assert.equal(api.terminalEnv.get('NODE_USE_ENV_PROXY')?.value, '1');
    assert.match(api.terminalEnv.get('NO_PROXY')?.value ?? '', /localhost/);
    assert.match(String(api.terminalEnv.description), /Caching Proxy/);

    const out = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'cp-term-')), 'env.txt');
    const terminal = vscode.window.createTerminal({ name: 'env probe', shellPath: '/bin/sh', shellArgs: ['-c', `env > ${out}.tmp && mv ${out}.tmp ${out}`] });
    try {
      const env = await waitFor(() => fs.existsSync(out) && fs.readFileSync(out, 'utf8'), 'the terminal to write its environment', 20_000);
      assert.match(env, new RegExp(`^HTTP_PROXY=${url}$`, 'm'));
      assert.match(env, new RegExp(`^https_proxy=${url}$`, 'm'));
      assert.match(env, /^NODE_USE_ENV_PROXY=1$/m);
    } finally {
      terminal.dispose();
    }
  });

  test('Copy Proxy URL puts the URL on the clipboard', async () => {
    await vscode.commands.executeCommand('cachingProxy.copyProxyUrl');
    assert.equal(await vscode.env.clipboard.readText(), api.controller.address!.url);
  });

  test('cached responses appear in the tree under their host, with status, size, freshness and hits', async () => {
    for (const p of ['/data.json', '/image.png', '/hello.txt', '/data.json']) assert.equal((await viaProxy(port, origin.url + p)).status, 200);
    await waitForEntry(api, '/image.png');
    const rows = await treeRows(api);
    const host = `127.0.0.1:${origin.port}`;
    assert.deepEqual([...rows.keys()], [host]);
    const entries = new Map(rows.get(host));
    assert.deepEqual([...entries.keys()], ['/data.json', '/hello.txt', '/image.png']);
    assert.match(entries.get('/data.json')!, /^200 · 40 B · fresh (9|10)m · 1 hit$/);
    assert.match(entries.get('/image.png')!, /^200 · 11 B · fresh (9|10)m · 0 hits$/);
    const item = api.tree.getTreeItem((await entryNode(api, '/data.json'))!);
    assert.equal(item.contextValue, 'entry.fresh');
    assert.match((item.tooltip as vscode.MarkdownString).value, /etag: "v1"/);
    assert.match((item.tooltip as vscode.MarkdownString).value, /cache-control: max-age=600/);
    await waitFor(() => /· [1-9]\d* hits?$/.test(api.statusBarText()), 'the hit count in the status bar');
  });

  test('Open shows the stored response: status line, headers, pretty JSON; binary bodies summarised', async () => {
    await vscode.commands.executeCommand('cachingProxy.openEntry', await entryNode(api, '/data.json'));
    let text = await waitFor(() => vscode.window.activeTextEditor?.document.uri.scheme === 'caching-proxy' && vscode.window.activeTextEditor.document.getText(), 'the stored response editor');
    assert.match(text, /^GET http:\/\/127\.0\.0\.1:\d+\/data\.json\nHTTP\/1\.1 200 OK\n/);
    assert.match(text, /^content-type: application\/json$/m);
    assert.match(text, /\n\n\{\n {2}"name": "caching-proxy",\n {2}"items": \[\n {4}1,/);

    await vscode.commands.executeCommand('cachingProxy.openEntry', await entryNode(api, '/image.png'));
    text = await waitFor(() => vscode.window.activeTextEditor?.document.uri.path.endsWith('/image.png') && vscode.window.activeTextEditor.document.getText(), 'the binary entry editor');
    assert.match(text, /\[binary body: 11 B, image\/png; not shown\]/);
    await vscode.commands.executeCommand('workbench.action.closeAllEditors');
  });

  test('Copy URL and Copy as curl put the entry on the clipboard', async () => {
    const node = await entryNode(api, '/data.json');
    await vscode.commands.executeCommand('cachingProxy.copyEntryUrl', node);
    assert.equal(await vscode.env.clipboard.readText(), `${origin.url}/data.json`);
    await vscode.commands.executeCommand('cachingProxy.copyAsCurl', node);
    assert.equal(await vscode.env.clipboard.readText(), `curl -x ${api.controller.address!.url} '${origin.url}/data.json'`);
  });

  test('Revalidate asks the origin again and reports the entry', async () => {
    const before = origin.hits.get('/data.json') ?? 0;
    const shownBefore = api.notifications.length;
    await vscode.commands.executeCommand('cachingProxy.revalidateEntry', await entryNode(api, '/data.json'));
    assert.equal(origin.hits.get('/data.json'), before + 1);
    const shown = api.notifications.slice(shownBefore).find((n) => n.message.startsWith('Revalidated'));
    assert.match(shown?.message ?? '', /^Revalidated http:\/\/127\.0\.0\.1:\d+\/data\.json: 200 · /);
  });

  test('the filter narrows the tree to matching URLs', async () => {
    api.tree.setFilter('json');
    try {
      const rows = await treeRows(api);
      assert.deepEqual([...rows.values()].flat().map(([label]) => label), ['/data.json']);
    } finally {
      await vscode.commands.executeCommand('cachingProxy.clearFilter');
    }
    assert.equal([...(await treeRows(api)).values()].flat().length, 3);
  });

  test('Purge removes one URL, Purge Host a host, Clear Cache everything', async () => {
    await vscode.commands.executeCommand('cachingProxy.purgeEntry', await entryNode(api, '/data.json'));
    let rows = await treeRows(api);
    assert.deepEqual([...rows.values()].flat().map(([label]) => label), ['/hello.txt', '/image.png']);
    const before = origin.hits.get('/data.json') ?? 0;
    await viaProxy(port, `${origin.url}/data.json`);
    assert.equal(origin.hits.get('/data.json'), before + 1, 'a purged URL goes to the origin again');
    await waitForEntry(api, '/data.json');

    const [host] = (await api.tree.getChildren()) as CacheNode[];
    await vscode.commands.executeCommand('cachingProxy.purgeHost', host);
    rows = await treeRows(api);
    assert.equal(rows.size, 0);

    await viaProxy(port, `${origin.url}/again.txt`);
    await waitForEntry(api, '/again.txt');
    const shownBefore = api.notifications.length;
    await vscode.commands.executeCommand('cachingProxy.clearCache');
    assert.equal((await treeRows(api)).size, 0);
    assert.equal(api.notifications.slice(shownBefore).find((n) => n.message.includes('cleared'))?.message, 'Caching Proxy: cleared 1 stored response.');
  });

  test('Restart Proxy replaces the process', async () => {
    const pid = api.controller.pid!;
    await vscode.commands.executeCommand('cachingProxy.restart');
    assert.equal(api.controller.state, 'running');
    assert.notEqual(api.controller.pid, pid);
    assert.equal(alive(pid), false);
    port = api.controller.address!.port;
    assert.equal((await viaProxy(port, `${origin.url}/after-restart`)).status, 200);
  });

  test('Stop Proxy leaves no process, no port and no terminal variables behind', async () => {
    const pid = api.controller.pid!;
    await vscode.commands.executeCommand('cachingProxy.stop');
    assert.equal(api.controller.state, 'stopped');
    assert.equal(alive(pid), false, 'the proxy process is gone');
    assert.equal(await portAccepts(port), false, 'the port is free');
    assert.equal(api.terminalEnv.get('HTTP_PROXY'), undefined);
    assert.equal(api.terminalEnv.get('NODE_USE_ENV_PROXY'), undefined);
    assert.match(api.statusBarText(), /Caching Proxy: stopped/);
    assert.ok(api.logLines.some((l) => l === 'info stopped'));
  });
});
