import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as http from 'node:http';
import { startOrigin, startTestProxy, viaProxy, waitFor, type ClientResponse } from '../helpers/net';

/** Resolves with the response, or with null if none came within `ms` (a hang, not a slow answer). */
function within(ms: number, pending: Promise<ClientResponse>): Promise<ClientResponse | null> {
  return Promise.race([pending, new Promise<null>((resolve) => setTimeout(() => resolve(null), ms).unref())]);
}

test('a client leaving before the origin answers does not stall the requests waiting on the same URL', async () => {
  // The origin holds its answers until released, so the first client can leave while a second
  // one waits (coalesced) for the same fetch; the origin request is kept alive for the waiter.
  let release!: () => void;
  const released = new Promise<void>((resolve) => (release = resolve));
  const origin = await startOrigin((_req, res) => {
    void released.then(() => {
      res.writeHead(200, { 'Content-Type': 'text/plain', 'Cache-Control': 'no-store' });
      res.end('fresh\n');
    });
  });
  const proxy = await startTestProxy();
  try {
    const target = `${origin.url}/api`;
    const first = http.request({ host: '127.0.0.1', port: proxy.port, path: target, headers: { host: new URL(target).host }, agent: false });
    first.on('error', () => {});
    first.end();
    await waitFor(() => origin.requests.length === 1, 'the first request reaching the origin');

    const second = viaProxy(proxy.port, target);
    await waitFor(() => proxy.events.some((e) => e.type === 'cache' && e.action === 'coalesced'), 'the second request waiting on the first');
    first.destroy();
    await waitFor(() => proxy.events.some((e) => e.type === 'response' && e.aborted === true), 'the proxy seeing the first client leave');
    release();

    const waited = await within(10_000, second);
    assert.ok(waited, 'the waiting request was never answered');
    assert.equal(waited.status, 200);
    assert.equal(waited.text, 'fresh\n');
    const later = await within(10_000, viaProxy(proxy.port, target));
    assert.ok(later, 'a later request for the URL was never answered');
    assert.equal(later.status, 200);
  } finally {
    release();
    await proxy.close();
    await origin.close();
  }
});
