import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as vscode from 'vscode';
import { freePort, getApi, occupyPort, portAccepts, setSetting, startOrigin, viaProxy, waitFor, type Origin, type TestApi } from './helpers';

suite('Settings', () => {
  let api: TestApi;
  let origin: Origin;

  suiteSetup(async () => {
    api = await getApi();
    origin = await startOrigin();
  });

  teardown(async () => {
    await vscode.commands.executeCommand('cachingProxy.stop');
    for (const key of ['timeout', 'cache.ttl', 'cache.dir', 'terminal.injectEnv']) await setSetting(api, key, undefined);
    await setSetting(api, 'port', 0);
  });

  suiteTeardown(() => origin.close());

  test('the cache directory defaults to the extension global storage; cache.dir moves it', async () => {
    await setSetting(api, 'cache.dir', undefined);
    const dir = api.settings()!.config.cache.dir!;
    assert.match(dir, /caching-proxy\.caching-proxy[/\\]cache$/);
    const custom = fs.mkdtempSync(path.join(os.tmpdir(), 'cp-dir-'));
    await setSetting(api, 'cache.dir', custom);
    assert.equal(api.settings()!.config.cache.dir, custom);
  });

  test('an unusable cache.dir is reported once and the proxy keeps serving from memory', async () => {
    const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'cp-file-')), 'a-file');
    fs.writeFileSync(file, 'not a directory');
    await setSetting(api, 'cache.dir', path.join(file, 'cache'));
    const before = api.notifications.length;
    await vscode.commands.executeCommand('cachingProxy.start');
    assert.equal(api.controller.state, 'running');
    const shown = await waitFor(() => api.notifications.slice(before).find((n) => n.level === 'warning'), 'the cache dir warning');
    assert.match(shown.message, new RegExp(`^Caching Proxy: cache: cannot write to ${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}/cache .*memory only$`));
    assert.equal((await viaProxy(api.controller.address!.port, `${origin.url}/memory-only`)).status, 200);
  });

  test('changing cachingProxy.port moves the running proxy', async () => {
    const first = await freePort();
    await setSetting(api, 'port', first);
    await vscode.commands.executeCommand('cachingProxy.start');
    assert.equal(api.controller.address?.port, first);
    const second = await freePort();
    await setSetting(api, 'port', second);
    assert.equal(api.controller.address?.port, second);
    assert.match(api.statusBarText(), new RegExp(`127\\.0\\.0\\.1:${second}`));
    assert.equal((await viaProxy(second, `${origin.url}/moved`)).status, 200);
    assert.equal(await portAccepts(first), false, 'the old port is released');
  });

  test('an invalid value is reported clearly and the last good configuration stays in force', async () => {
    const good = await freePort();
    await setSetting(api, 'port', good);
    await vscode.commands.executeCommand('cachingProxy.start');
    const before = api.notifications.length;
    await setSetting(api, 'port', 70000);
    const shown = api.notifications.slice(before).find((n) => n.level === 'error');
    assert.equal(
      shown?.message,
      'Caching Proxy: invalid setting. cachingProxy.port: 70000 is invalid; expected a whole number from 0 to 65535 The proxy keeps running with the previous settings.',
    );
    assert.equal(api.controller.address?.port, good);
    assert.equal(api.settings()?.config.port, good);
    assert.equal((await viaProxy(good, `${origin.url}/still`)).status, 200);

    await setSetting(api, 'timeout', -5);
    assert.match(api.notifications.at(-1)!.message, /cachingProxy\.timeout: -5 is invalid/);
    assert.equal(api.settings()?.config.timeoutSeconds, 30);
  });

  test('cache settings apply live without restarting or losing the cache', async () => {
    await vscode.commands.executeCommand('cachingProxy.start');
    const pid = api.controller.pid;
    const port = api.controller.address!.port;
    await viaProxy(port, `${origin.url}/kept.txt`);
    await waitFor(async () => (await api.controller.list()).some((e) => e.url.endsWith('/kept.txt')), 'the entry to be stored');
    await setSetting(api, 'cache.ttl', 42);
    assert.equal(api.controller.config?.cache.ttl, 42);
    assert.equal(api.controller.pid, pid, 'same process');
    assert.equal(api.controller.address?.port, port, 'same port');
    assert.ok((await api.controller.list()).some((e) => e.url.endsWith('/kept.txt')), 'the entry survived');
  });

  test('terminal.injectEnv turns the terminal variables off and on live', async () => {
    await vscode.commands.executeCommand('cachingProxy.start');
    assert.equal(api.terminalEnv.get('HTTP_PROXY')?.value, api.controller.address!.url);
    await setSetting(api, 'terminal.injectEnv', false);
    assert.equal(api.terminalEnv.get('HTTP_PROXY'), undefined);
    await setSetting(api, 'terminal.injectEnv', true);
    assert.equal(api.terminalEnv.get('HTTP_PROXY')?.value, api.controller.address!.url);
  });

  test('a port in use: an error that says so, with actions to pick another port or open the setting', async () => {
    const blocker = await occupyPort();
    try {
      await setSetting(api, 'port', blocker.port);
      const before = api.notifications.length;
      await vscode.commands.executeCommand('cachingProxy.start');
      assert.equal(api.controller.state, 'stopped');
      const shown = api.notifications.slice(before).find((n) => n.level === 'error');
      assert.equal(shown?.message, `Caching Proxy: port ${blocker.port} on 127.0.0.1 is already in use by another program.`);
      assert.deepEqual(shown?.actions, ['Use a Free Port', 'Open Setting']);

      // Start works once the setting names a free port.
      await setSetting(api, 'port', 0);
      await vscode.commands.executeCommand('cachingProxy.start');
      assert.equal(api.controller.state, 'running');

      // While running, moving onto a taken port keeps the proxy where it is.
      const where = api.controller.address!.port;
      const during = api.notifications.length;
      await setSetting(api, 'port', blocker.port);
      assert.equal(api.controller.address?.port, where);
      assert.match(api.notifications.slice(during).find((n) => n.level === 'error')?.message ?? '', new RegExp(`port ${blocker.port} .* already in use.* keeps listening on http://127\\.0\\.0\\.1:${where}`));
    } finally {
      await blocker.close();
    }
  });
});
