import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as vscode from 'vscode';
import type { HostNode } from '../../src/extension/cachedUrlsTree';
import { getApi, setSetting, startOrigin, viaProxy, waitFor, type Origin, type TestApi } from './helpers';

interface Har {
  log: { entries: { request: { method: string; url: string; headers: { name: string; value: string }[] }; response: { status: number; content: { text?: string; encoding?: string } } }[] };
}

const readHar = (file: string) => JSON.parse(fs.readFileSync(file, 'utf8')) as Har;

suite('HAR: record, export and import from VS Code', () => {
  let api: TestApi;
  let origin: Origin;
  let port = 0;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cp-ext-har-'));

  /** The first notification shown after `from` that matches. */
  const shown = (from: number, pattern: RegExp) => waitFor(() => api.notifications.slice(from).find((n) => pattern.test(n.message)), `a notification matching ${pattern}`);

  suiteSetup(async () => {
    api = await getApi();
    origin = await startOrigin();
    await setSetting(api, 'port', 0);
    await setSetting(api, 'cache.dir', path.join(dir, 'cache'));
    await vscode.commands.executeCommand('cachingProxy.start');
    port = api.controller.address!.port;
  });

  suiteTeardown(async () => {
    await vscode.commands.executeCommand('cachingProxy.stop');
    await setSetting(api, 'cache.dir', undefined);
    await origin.close();
  });

  test('Start Recording shows in the status bar; every exchange, hits too, is in the file after Stop Recording', async () => {
    const file = path.join(dir, 'session.har');
    let from = api.notifications.length;
    await vscode.commands.executeCommand('cachingProxy.startRecording', vscode.Uri.file(file));
    assert.equal((await shown(from, /recording every exchange/)).message, `Caching Proxy: recording every exchange to ${file}.`);
    assert.match(api.statusBarText(), new RegExp(`^\\$\\(record\\) 127\\.0\\.0\\.1:${port} · recording · `));
    for (const p of ['/data.json', '/data.json', '/image.png']) assert.equal((await viaProxy(port, origin.url + p)).status, 200);
    from = api.notifications.length;
    await vscode.commands.executeCommand('cachingProxy.stopRecording');
    assert.equal((await shown(from, /recorded/)).message, `Caching Proxy: recorded 3 exchanges to ${file}.`);
    assert.doesNotMatch(api.statusBarText(), /recording/);
    const har = readHar(file);
    assert.deepEqual(har.log.entries.map((e) => new URL(e.request.url).pathname), ['/data.json', '/data.json', '/image.png']);
    assert.equal(har.log.entries[0].response.content.text, '{"name":"caching-proxy","items":[1,2,3]}');
    assert.equal(har.log.entries[2].response.content.encoding, 'base64');
    // After Stop, nothing more is written.
    await viaProxy(port, `${origin.url}/after.txt`);
    assert.equal(readHar(file).log.entries.length, 3);
  });

  test('Export Cache as HAR… writes every stored response; Export as HAR… on a host writes that host only', async () => {
    const all = path.join(dir, 'all.har');
    let from = api.notifications.length;
    await vscode.commands.executeCommand('cachingProxy.exportHar', vscode.Uri.file(all));
    const stored = (await api.controller.list()).length;
    assert.ok(stored >= 3);
    assert.equal((await shown(from, /exported/)).message, `Caching Proxy: exported ${stored} stored responses to ${all}.`);
    assert.equal(readHar(all).log.entries.length, stored);

    api.tree.refresh();
    const host = ((await api.tree.getChildren()) as HostNode[]).find((h) => h.host === `127.0.0.1:${origin.port}`)!;
    const one = path.join(dir, 'host.har');
    from = api.notifications.length;
    await vscode.commands.executeCommand('cachingProxy.exportNodeHar', host, vscode.Uri.file(one));
    await shown(from, /exported/);
    assert.ok(readHar(one).log.entries.every((e) => e.request.url.startsWith(origin.url)));
    const entry = (await api.tree.getChildren(host)).find((n) => n.kind === 'entry' && n.entry.url.endsWith('/image.png'))!;
    const single = path.join(dir, 'entry.har');
    from = api.notifications.length;
    await vscode.commands.executeCommand('cachingProxy.exportNodeHar', entry, vscode.Uri.file(single));
    assert.equal((await shown(from, /exported/)).message, `Caching Proxy: exported 1 stored response to ${single}.`);
  });

  test('Import HAR… brings an export back into a cleared cache; the responses are served without the origin', async () => {
    await vscode.commands.executeCommand('cachingProxy.clearCache');
    assert.equal((await api.controller.list()).length, 0);
    const all = path.join(dir, 'all.har');
    const count = readHar(all).log.entries.length;
    const from = api.notifications.length;
    await vscode.commands.executeCommand('cachingProxy.importHar', vscode.Uri.file(all));
    assert.equal((await shown(from, /imported/)).message, `Caching Proxy: imported ${count} of ${count} entries from ${all}.`);
    assert.equal((await api.controller.list()).length, count);
    const before = origin.hits.get('/data.json') ?? 0;
    const res = await viaProxy(port, `${origin.url}/data.json`);
    assert.equal(res.text, '{"name":"caching-proxy","items":[1,2,3]}');
    assert.match(String(res.headers['cache-status']), /hit/);
    assert.equal(origin.hits.get('/data.json') ?? 0, before, 'answered from the imported entry');
  });

  test('cachingProxy.record.* settings are validated like the others, under their own names', async () => {
    const from = api.notifications.length;
    await setSetting(api, 'record.maxBodyMB', -1);
    try {
      const n = await shown(from, /invalid setting/);
      assert.match(n.message, /cachingProxy\.record\.maxBodyMB: -1 is invalid; expected a number from 0 to 1024/);
    } finally {
      await setSetting(api, 'record.maxBodyMB', undefined);
    }
    assert.equal(api.settings()?.config.har.recordMaxBodyMB, 10);
  });

  test('Import HAR… of a malformed file names the problem and changes nothing', async () => {
    const bad = path.join(dir, 'bad.har');
    fs.writeFileSync(bad, '{"log":{"entries":[{"request":{"method":"GET","url":"http://x.test/"},"response":{"status":"ok","content":{}}}]}}');
    const before = (await api.controller.list()).length;
    const from = api.notifications.length;
    await vscode.commands.executeCommand('cachingProxy.importHar', vscode.Uri.file(bad));
    const n = await shown(from, /import failed/);
    assert.equal(n.level, 'error');
    assert.match(n.message, /log\.entries\[0\]\.response\.status \(GET http:\/\/x\.test\/\): "ok" is not a status code/);
    assert.equal((await api.controller.list()).length, before);
  });
});
