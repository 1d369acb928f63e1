import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as net from 'node:net';
import * as path from 'node:path';
import { spawn } from 'node:child_process';
import { resolveConfig } from '../../src/core/config';
import type { ProxyEvent } from '../../src/core/events';
import { ProxyController, ProxyStartError } from '../../src/extension/proxyController';
import { startOrigin, viaProxy, waitFor } from '../helpers/net';
import { portAccepts } from '../helpers/ports';

// The real bundled entry the extension forks (npm test builds it first).
const ENTRY = path.resolve(__dirname, '../../../dist/cli.js');
const config = (input: Record<string, unknown> = {}) => resolveConfig({ port: 0, ...input, cache: { dir: null } });

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}


test('the forked proxy serves, streams events in batches, answers queries and stops without leftovers', async () => {
  const origin = await startOrigin((_req, res) => res.end('hello'));
  const controller = new ProxyController({ entry: ENTRY });
  const seen: ProxyEvent[] = [];
  controller.on('events', (events) => seen.push(...events));
  try {
    const address = await controller.start(config());
    assert.equal(controller.state, 'running');
    const res = await viaProxy(address.port, `${origin.url}/a`);
    assert.equal(res.status, 200);
    assert.equal(res.text, 'hello');
    await waitFor(() => seen.some((e) => e.type === 'response' && e.url === `${origin.url}/a`), 'the response event');
    assert.ok(Array.isArray(await controller.list()));
    const stats = await controller.stats();
    assert.equal(typeof stats.entries, 'number');
    const pid = controller.pid!;
    await controller.stop();
    assert.equal(controller.state, 'stopped');
    assert.equal(alive(pid), false, 'the proxy process is gone');
    assert.equal(await portAccepts(address.port), false, 'the port is released');
    await assert.rejects(controller.list(), /not running/);
  } finally {
    await controller.stop();
    await origin.close();
  }
});

test('a burst of traffic reaches the parent as a few batches, not one message per event', async () => {
  const origin = await startOrigin((_req, res) => res.end('x'));
  const controller = new ProxyController({ entry: ENTRY });
  let batches = 0;
  let events = 0;
  controller.on('events', (batch, dropped) => {
    batches++;
    events += batch.length + dropped;
  });
  try {
    const address = await controller.start(config());
    const requests = 300;
    await Promise.all(Array.from({ length: requests }, (_, i) => viaProxy(address.port, `${origin.url}/burst/${i}`)));
    await waitFor(() => events >= requests * 2, 'request and response events for every request');
    assert.ok(batches * 10 <= events, `${events} events arrived in ${batches} messages`);
  } finally {
    await controller.stop();
    await origin.close();
  }
});

test('a port in use fails with EADDRINUSE and the controller can start again', async () => {
  const blocker = net.createServer();
  await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', r));
  const port = (blocker.address() as net.AddressInfo).port;
  const controller = new ProxyController({ entry: ENTRY });
  try {
    await assert.rejects(controller.start(config({ port })), (err: unknown) => {
      assert.ok(err instanceof ProxyStartError);
      assert.equal(err.code, 'EADDRINUSE');
      assert.match(err.message, new RegExp(`port ${port}.*already in use`));
      return true;
    });
    assert.equal(controller.state, 'stopped');
    const address = await controller.start(config());
    assert.notEqual(address.port, port);
  } finally {
    await controller.stop();
    blocker.close();
  }
});

test('update moves the listener live; a taken port is refused and the old one keeps serving', async () => {
  const origin = await startOrigin((_req, res) => res.end('ok'));
  const blocker = net.createServer();
  await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', r));
  const taken = (blocker.address() as net.AddressInfo).port;
  const controller = new ProxyController({ entry: ENTRY });
  try {
    const first = await controller.start(config());
    const free = await new Promise<number>((resolve) => {
      const s = net.createServer().listen(0, '127.0.0.1', () => {
        const p = (s.address() as net.AddressInfo).port;
        s.close(() => resolve(p));
      });
    });
    const second = await controller.update(config({ port: free }));
    assert.equal(second.port, free);
    assert.equal((await viaProxy(free, `${origin.url}/x`)).text, 'ok');
    assert.equal(await portAccepts(first.port), false, 'the old port is released');
    await assert.rejects(controller.update(config({ port: taken })), /already in use/);
    assert.equal(controller.address?.port, free);
    assert.equal((await viaProxy(free, `${origin.url}/y`)).text, 'ok');
  } finally {
    await controller.stop();
    blocker.close();
    await origin.close();
  }
});

test('a crash of the proxy process is reported as unexpected and Start works again', async () => {
  const controller = new ProxyController({ entry: ENTRY });
  try {
    await controller.start(config());
    const exited = new Promise<{ expected: boolean; signal: string | null }>((r) => controller.once('exit', r));
    process.kill(controller.pid!, 'SIGKILL');
    const exit = await exited;
    assert.equal(exit.expected, false);
    assert.equal(exit.signal, 'SIGKILL');
    assert.equal(controller.state, 'stopped');
    const again = await controller.start(config());
    assert.ok(again.port > 0);
  } finally {
    await controller.stop();
  }
});

test('when the parent dies, the proxy process exits and frees its port', async () => {
  // A separate parent process (as the extension host is) that starts the proxy and is then killed.
  const controllerModule = require.resolve('../../src/extension/proxyController');
  const script = `
    const { ProxyController } = require(${JSON.stringify(controllerModule)});
    const c = new ProxyController({ entry: ${JSON.stringify(ENTRY)} });
    c.start({ ...${JSON.stringify(config())} }).then((a) => console.log(JSON.stringify({ pid: c.pid, port: a.port })));
  `;
  const parent = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  const line = await new Promise<string>((resolve) => parent.stdout.once('data', (d: Buffer) => resolve(d.toString())));
  const { pid, port } = JSON.parse(line) as { pid: number; port: number };
  assert.ok(alive(pid));
  assert.equal(await portAccepts(port), true);
  parent.kill('SIGKILL');
  await waitFor(() => !alive(pid), 'the orphaned proxy process to exit', 10_000);
  assert.equal(await portAccepts(port), false);
});
