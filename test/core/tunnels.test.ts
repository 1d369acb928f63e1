import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as http from 'node:http';
import * as https from 'node:https';
import * as net from 'node:net';
import * as tls from 'node:tls';
import type { AddressInfo } from 'node:net';
import { WebSocket, WebSocketServer } from 'ws';
import { curl, startTestProxy, waitFor, type TestProxy } from '../helpers/net';
import { selfSignedCert } from '../helpers/processes';

/** A masked client text frame (RFC 6455 §5.2), for speaking WebSocket over a raw socket. */
function clientTextFrame(text: string): Buffer {
  const payload = Buffer.from(text);
  const mask = Buffer.from([1, 2, 3, 4]);
  const masked = Buffer.from(payload.map((b, i) => b ^ mask[i % 4]));
  return Buffer.concat([Buffer.from([0x81, 0x80 | payload.length]), mask, masked]);
}

describe('CONNECT tunnels and upgrades', () => {
  let tlsServer: https.Server;
  let tlsPort: number;
  let wsHttp: http.Server;
  let wsPort: number;
  let p: TestProxy;

  before(async () => {
    const { key, cert } = selfSignedCert();
    tlsServer = https.createServer({ key, cert }, (req, res) => res.end(`secure ${req.url}`));
    await new Promise<void>((r) => tlsServer.listen(0, '127.0.0.1', r));
    tlsPort = (tlsServer.address() as AddressInfo).port;

    wsHttp = http.createServer((_req, res) => {
      res.writeHead(426);
      res.end('upgrade required');
    });
    const wss = new WebSocketServer({ server: wsHttp });
    wss.on('connection', (socket, req) => socket.on('message', (m) => socket.send(`echo ${req.url} ${m.toString()}`)));
    await new Promise<void>((r) => wsHttp.listen(0, '127.0.0.1', r));
    wsPort = (wsHttp.address() as AddressInfo).port;
    p = await startTestProxy({ cache: { policy: 'off' } });
  });
  after(async () => {
    await p.close();
    tlsServer.closeAllConnections();
    tlsServer.close();
    wsHttp.closeAllConnections();
    wsHttp.close();
  });

  test('HTTPS through the proxy with curl (CONNECT + TLS end to end)', async () => {
    p.events.length = 0;
    const r = await curl(['-k', '-x', p.url, `https://127.0.0.1:${tlsPort}/hello`]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'secure /hello');
    await waitFor(() => p.events.some((e) => e.type === 'tunnel-close'), 'tunnel-close event');
    const closed = p.events.find((e) => e.type === 'tunnel-close');
    assert.ok(closed && closed.type === 'tunnel-close' && closed.target === `127.0.0.1:${tlsPort}` && (closed.bytesDown ?? 0) > 0);
  });

  test('HTTPS through the proxy with Node (CONNECT, then tls.connect over the socket)', async () => {
    const socket = await new Promise<net.Socket>((resolve, reject) => {
      const req = http.request({ host: '127.0.0.1', port: p.port, method: 'CONNECT', path: `localhost:${tlsPort}` });
      req.on('connect', (res, s) => (res.statusCode === 200 ? resolve(s) : reject(new Error(`CONNECT ${res.statusCode}`))));
      req.on('error', reject);
      req.end();
    });
    const body = await new Promise<string>((resolve, reject) => {
      const tlsSocket = tls.connect({ socket, servername: 'localhost', rejectUnauthorized: false });
      let out = '';
      tlsSocket.on('data', (c) => (out += c));
      tlsSocket.on('end', () => resolve(out));
      tlsSocket.on('error', reject);
      tlsSocket.write('GET /node HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n');
    });
    assert.match(body, /secure \/node$/);
  });

  test('CONNECT to a closed port answers 502 with a reason', async () => {
    const closed = net.createServer();
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
    const port = (closed.address() as AddressInfo).port;
    await new Promise<void>((r) => closed.close(() => r()));
    const status = await new Promise<number>((resolve) => {
      const req = http.request({ host: '127.0.0.1', port: p.port, method: 'CONNECT', path: `127.0.0.1:${port}` });
      req.on('connect', (res) => resolve(res.statusCode ?? 0));
      req.on('response', (res) => resolve(res.statusCode ?? 0));
      req.end();
    });
    assert.equal(status, 502);
  });

  test('WebSocket through the proxy, path-style', async () => {
    const ws = new WebSocket(`ws://127.0.0.1:${p.port}/127.0.0.1:${wsPort}/chat`);
    const reply = await new Promise<string>((resolve, reject) => {
      ws.on('open', () => ws.send('hi'));
      ws.on('message', (m) => resolve(m.toString()));
      ws.on('error', reject);
    });
    ws.close();
    assert.equal(reply, 'echo /chat hi');
  });

  test('WebSocket through the proxy, absolute-form upgrade on a raw socket', async () => {
    const socket = net.connect(p.port, '127.0.0.1');
    let received = Buffer.alloc(0);
    socket.on('data', (c: Buffer) => (received = Buffer.concat([received, c])));
    socket.write(
      `GET http://127.0.0.1:${wsPort}/raw HTTP/1.1\r\nHost: 127.0.0.1:${wsPort}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
        'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n',
    );
    await waitFor(() => received.includes('\r\n\r\n'), '101 response');
    assert.match(received.toString('latin1'), /^HTTP\/1\.1 101 /);
    assert.match(received.toString('latin1'), /Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK\+xOo=/i);
    const headEnd = received.indexOf('\r\n\r\n') + 4;
    received = received.subarray(headEnd);
    socket.write(clientTextFrame('ping'));
    await waitFor(() => received.length >= 2 && received.length >= 2 + received[1], 'echo frame');
    assert.equal(received.subarray(2, 2 + received[1]).toString(), 'echo /raw ping');
    socket.destroy();
  });

  test('an origin that declines the upgrade: its answer is relayed', async () => {
    const out = await new Promise<string>((resolve) => {
      const socket = net.connect(p.port, '127.0.0.1');
      let data = '';
      socket.on('data', (c) => (data += c));
      socket.on('close', () => resolve(data));
      socket.write(`GET http://127.0.0.1:${wsPort}/ HTTP/1.1\r\nHost: 127.0.0.1:${wsPort}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n`);
      setTimeout(() => socket.destroy(), 2000);
    });
    // No Sec-WebSocket-Key: the ws origin refuses with 400, and the client sees exactly that.
    assert.match(out, /^HTTP\/1\.1 400 /);
    assert.match(out, /Connection: close/);
  });
});
