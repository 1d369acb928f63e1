import { test } from 'node:test';
import * as http from 'node:http';
import * as net from 'node:net';
import type { AddressInfo } from 'node:net';
import { startTestProxy, waitFor } from '../helpers/net';

// A client that gives up on a slow origin must not leave the proxy's origin request hanging
// until the origin answers or the timeout fires: the origin sees its connection closed.
for (const policy of ['off', 'standard'] as const) {
  test(`a client giving up before the origin answers aborts the origin request (policy ${policy})`, async () => {
    let originSocketClosed = false;
    let received = 0;
    const origin = net.createServer((socket) => {
      socket.on('data', () => received++);
      socket.on('close', () => (originSocketClosed = true));
      socket.on('error', () => {});
    });
    await new Promise<void>((r) => origin.listen(0, '127.0.0.1', r));
    const port = (origin.address() as AddressInfo).port;
    const p = await startTestProxy({ timeoutSeconds: 60, cache: { policy } });
    try {
      const req = http.get({ host: '127.0.0.1', port: p.port, path: `http://127.0.0.1:${port}/never-answers` });
      req.on('error', () => {});
      await waitFor(() => received > 0, 'the request at the origin');
      req.destroy();
      await waitFor(() => originSocketClosed, 'the origin connection to be closed by the proxy', 5000);
    } finally {
      await p.close();
      origin.close();
    }
  });
}
