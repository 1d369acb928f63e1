import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startOrigin, startTestProxy, viaProxy } from '../helpers/net';

test('forwards a GET through the proxy', async () => {
  const origin = await startOrigin((_req, res) => res.end('hello'));
  const p = await startTestProxy();
  try {
    const r = await viaProxy(p.port, `${origin.url}/x`);
    assert.equal(r.status, 200);
    assert.equal(r.text, 'hello');
    assert.equal(origin.count('/x'), 1);
  } finally {
    await p.close();
    await origin.close();
  }
});
