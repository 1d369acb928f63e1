import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import * as os from 'node:os';
import { resolveConfig } from '../../src/core/config';
import { startOrigin, startTestProxy, viaProxy, type TestOrigin } from '../helpers/net';
import { runCli, spawnProxy } from './lib/child';
import { rawExchange } from './lib/wire';

/** Open-proxy protection: loopback by default, explicit opt-in for remote, Basic credentials, no loops. */

/** A non-loopback IPv4 address of this machine, or null. */
function externalAddress(): string | null {
  for (const list of Object.values(os.networkInterfaces())) {
    for (const i of list ?? []) if (i.family === 'IPv4' && !i.internal) return i.address;
  }
  return null;
}

function connectOutcome(host: string, port: number): Promise<'connected' | string> {
  return new Promise((resolve) => {
    const s = net.connect(port, host);
    s.once('connect', () => {
      s.destroy();
      resolve('connected');
    });
    s.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
  });
}

/** An origin that serves GET and accepts the `test` upgrade protocol (echoing tunnel bytes). */
async function upgradableOrigin(): Promise<TestOrigin & { upgrades: number }> {
  const origin = (await startOrigin((_req, res) => res.end('origin says hi'))) as TestOrigin & { upgrades: number };
  origin.upgrades = 0;
  origin.server.on('upgrade', (_req: http.IncomingMessage, socket: net.Socket) => {
    origin.upgrades++;
    socket.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: test\r\nConnection: Upgrade\r\n\r\n');
    socket.pipe(socket);
  });
  return origin;
}

test('by default the proxy listens on 127.0.0.1 only: unreachable on the machine\'s other addresses', async (t) => {
  const proxy = await spawnProxy(['--memory-only']);
  try {
    assert.equal(new URL(proxy.url).hostname, '127.0.0.1');
    assert.equal(await connectOutcome('127.0.0.1', proxy.port), 'connected');
    const external = externalAddress();
    if (!external) {
      t.diagnostic('no non-loopback IPv4 interface on this machine: external reachability not checked');
      return;
    }
    assert.equal(await connectOutcome(external, proxy.port), 'ECONNREFUSED');
  } finally {
    await proxy.stop();
  }
});

test('a non-loopback host without allowRemote is refused by the CLI with exit code 2 (flag and config file)', async () => {
  const viaFlag = await runCli(['--port', '0', '--memory-only', '--host', '0.0.0.0']);
  assert.equal(viaFlag.code, 2);
  assert.match(viaFlag.stderr, /0\.0\.0\.0.*not a loopback address.*--allow-remote/s);
  assert.doesNotMatch(viaFlag.stdout, /listening/);

  const external = externalAddress() ?? '0.0.0.0';
  const dir = mkdtempSync(`${os.tmpdir()}/faults-cfg-`);
  const file = `${dir}/config.json`;
  writeFileSync(file, JSON.stringify({ host: external, port: 0, cache: { dir: null } }));
  const viaFile = await runCli(['--config', file]);
  assert.equal(viaFile.code, 2);
  assert.match(viaFile.stderr, /allowRemote|--allow-remote/);

  // The core API refuses it the same way.
  assert.throws(() => resolveConfig({ host: '::' }), /not a loopback address/);
  assert.doesNotThrow(() => resolveConfig({ host: '::', allowRemote: true }));
  rmSync(dir, { recursive: true, force: true });
});

test('with allowRemote and auth, plain requests, path-style, CONNECT and upgrades all need the credential (407)', async () => {
  const origin = await upgradableOrigin();
  const host = externalAddress() ?? '0.0.0.0';
  const proxy = await spawnProxy(['--memory-only', '--host', host, '--allow-remote', '--auth', 'dev:s3cret']);
  const reach = host === '0.0.0.0' ? '127.0.0.1' : host;
  const good = 'Basic ' + Buffer.from('dev:s3cret').toString('base64');
  const bad = 'Basic ' + Buffer.from('dev:wrong').toString('base64');
  const target = `http://127.0.0.1:${origin.port}`;
  try {
    assert.match(proxy.stderr(), /WARNING: listening on/);
    assert.doesNotMatch(proxy.stderr(), /no --auth is set/);
    const send = (text: string, method = 'GET') => rawExchange(proxy.port, Buffer.from(text), [method], 1, 5000, reach);

    for (const auth of [null, bad, 'Basic', good.toLowerCase(), `Bearer ${good.slice(6)}`]) {
      const h = auth ? `Proxy-Authorization: ${auth}\r\n` : '';
      const plain = await send(`GET ${target}/secret HTTP/1.1\r\nHost: 127.0.0.1:${origin.port}\r\n${h}\r\n`);
      assert.equal(plain.responses[0]?.status, 407, `plain request with ${auth}`);
      assert.ok(plain.responses[0].headers.some(([k, v]) => k === 'proxy-authenticate' && /^Basic realm=/.test(v)));
      assert.match(plain.responses[0].body.toString(), /Proxy authentication required/);
      const pathStyle = await send(`GET /127.0.0.1:${origin.port}/secret HTTP/1.1\r\nHost: ${reach}:${proxy.port}\r\n${h}\r\n`);
      assert.equal(pathStyle.responses[0]?.status, 407, `path-style request with ${auth}`);
      const connect = await send(`CONNECT 127.0.0.1:${origin.port} HTTP/1.1\r\nHost: 127.0.0.1:${origin.port}\r\n${h}\r\n`, 'CONNECT');
      assert.equal(connect.responses[0]?.status, 407, `CONNECT with ${auth}`);
      const upgrade = await send(`GET ${target}/ws HTTP/1.1\r\nHost: 127.0.0.1:${origin.port}\r\nConnection: Upgrade\r\nUpgrade: test\r\n${h}\r\n`);
      assert.equal(upgrade.responses[0]?.status, 407, `upgrade with ${auth}`);
    }
    assert.equal(origin.requests.length, 0, 'nothing reached the origin without the credential');
    assert.equal(origin.upgrades, 0);

    const h = `Proxy-Authorization: ${good}\r\n`;
    const plain = await send(`GET ${target}/secret HTTP/1.1\r\nHost: 127.0.0.1:${origin.port}\r\n${h}\r\n`);
    assert.equal(plain.responses[0]?.status, 200);
    assert.equal(plain.responses[0].body.toString(), 'origin says hi');
    assert.equal(origin.requests[0].headers['proxy-authorization'], undefined, 'the credential is not forwarded to the origin');
    const connect = await send(`CONNECT 127.0.0.1:${origin.port} HTTP/1.1\r\nHost: 127.0.0.1:${origin.port}\r\n${h}\r\n`, 'CONNECT');
    assert.equal(connect.responses[0]?.status, 200);
    const upgrade = await send(`GET ${target}/ws HTTP/1.1\r\nHost: 127.0.0.1:${origin.port}\r\nConnection: Upgrade\r\nUpgrade: test\r\n${h}\r\n`);
    assert.equal(upgrade.responses[0]?.status, 101);
    assert.equal(origin.upgrades, 1);
  } finally {
    await proxy.stop();
    await origin.close();
  }
});

test('requests that target the proxy itself get 508, in every spelling, and the proxy keeps serving', async () => {
  const origin = await upgradableOrigin();
  const p = await startTestProxy();
  try {
    const self = [
      `http://127.0.0.1:${p.port}/`,
      `http://localhost:${p.port}/x`,
      `http://[::1]:${p.port}/`,
      `http://0.0.0.0:${p.port}/`,
      `http://127.1:${p.port}/`,
      `http://2130706433:${p.port}/`,
      `http://0x7f000001:${p.port}/`,
      `http://127.9.9.9:${p.port}/`,
      `http://${os.hostname()}:${p.port}/`,
    ];
    for (const url of self) {
      const r = await viaProxy(p.port, url);
      assert.equal(r.status, 508, url);
      assert.match(r.text, /Loop detected/);
    }
    const pathStyle = await rawExchange(p.port, Buffer.from(`GET /127.0.0.1:${p.port}/x HTTP/1.1\r\nHost: 127.0.0.1:${p.port}\r\n\r\n`), ['GET'], 1);
    assert.equal(pathStyle.responses[0]?.status, 508);
    for (const target of [`127.0.0.1:${p.port}`, `localhost:${p.port}`, `[::1]:${p.port}`]) {
      const connect = await rawExchange(p.port, Buffer.from(`CONNECT ${target} HTTP/1.1\r\nHost: ${target}\r\n\r\n`), ['CONNECT'], 1);
      assert.equal(connect.responses[0]?.status, 508, `CONNECT ${target}`);
    }
    const upgrade = await rawExchange(p.port, Buffer.from(`GET http://127.0.0.1:${p.port}/ws HTTP/1.1\r\nHost: 127.0.0.1:${p.port}\r\nConnection: Upgrade\r\nUpgrade: test\r\n\r\n`), ['GET'], 1);
    assert.equal(upgrade.responses[0]?.status, 508);
    const ok = await viaProxy(p.port, `${origin.url}/still-serving`);
    assert.equal(ok.status, 200);
  } finally {
    await p.close();
    await origin.close();
  }
});

test('a loop through a chain of two proxies (A upstream B, B upstream A) ends in 508, not a storm', async () => {
  const a = await startTestProxy();
  const b = await startTestProxy({ upstreamProxy: a.url });
  try {
    await a.proxy.update(resolveConfig({ ...a.proxy.config, upstreamProxy: b.url }));
    const r = await viaProxy(a.port, 'http://loop.test/x');
    assert.equal(r.status, 508);
    assert.match(r.text, /Loop detected/);
    const hops = a.events.filter((e) => e.type === 'request').length + b.events.filter((e) => e.type === 'request').length;
    assert.ok(hops <= 3, `the request went round ${hops} times`);
  } finally {
    await b.close();
    await a.close();
  }
});
