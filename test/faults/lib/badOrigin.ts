import * as net from 'node:net';

/**
 * A real origin on 127.0.0.1 that misbehaves on purpose, chosen by the request path:
 *
 *   /ok/...           200, 12-byte body, keep-alive
 *   /close-mid-body   Content-Length 100000, sends 1000 bytes, closes
 *   /short-length     Content-Length 5000, sends 100 bytes, half-closes (FIN)
 *   /long-length      Content-Length 10, sends 10 bytes plus 30 more on the same connection
 *   /stall-head       reads the request, never answers
 *   /stall-body       sends headers and 100 bytes of a 100000-byte body, then nothing
 *   /bad-status       "HTTP/1.1 2OO OK"
 *   /not-http         answers with bytes that are not HTTP
 *   /hang-up          closes as soon as the request arrives
 *   /reset            resets the connection (RST)
 *
 * Every response says Cache-Control: max-age=600, so a cache would want to store it.
 */
export interface BadOrigin {
  port: number;
  url: string;
  /** Requests received, by path. */
  hits: Map<string, number>;
  /** Connections currently open from the proxy. */
  open(): number;
  close(): Promise<void>;
}

export const FAULTS = ['/close-mid-body', '/short-length', '/long-length', '/stall-head', '/stall-body', '/bad-status', '/not-http', '/hang-up', '/reset'] as const;

const CACHEABLE = 'Cache-Control: max-age=600\r\n';

export async function startBadOrigin(): Promise<BadOrigin> {
  const hits = new Map<string, number>();
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => socket.destroy());
    let buffered = '';
    socket.on('data', (chunk: Buffer) => {
      buffered += chunk.toString('latin1');
      for (;;) {
        const end = buffered.indexOf('\r\n\r\n');
        if (end < 0) return;
        const head = buffered.slice(0, end);
        buffered = buffered.slice(end + 4);
        const target = head.split(' ')[1] ?? '/';
        const path = target.replace(/^https?:\/\/[^/]+/, '').replace(/\?.*$/, '');
        const kind = FAULTS.find((f) => path.startsWith(f)) ?? '/ok';
        hits.set(kind, (hits.get(kind) ?? 0) + 1);
        if (!answer(socket, kind)) return;
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as net.AddressInfo).port;
  return {
    port,
    url: `http://127.0.0.1:${port}`,
    hits,
    open: () => sockets.size,
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}

/** Writes the answer for `kind`; returns false when the connection is done with. */
function answer(socket: net.Socket, kind: string): boolean {
  switch (kind) {
    case '/close-mid-body':
      socket.write(`HTTP/1.1 200 OK\r\n${CACHEABLE}Content-Length: 100000\r\n\r\n` + 'x'.repeat(1000));
      setTimeout(() => socket.destroy(), 5);
      return false;
    case '/short-length':
      socket.end(`HTTP/1.1 200 OK\r\n${CACHEABLE}Content-Length: 5000\r\n\r\n` + 's'.repeat(100));
      return false;
    case '/long-length':
      socket.write(`HTTP/1.1 200 OK\r\n${CACHEABLE}Content-Length: 10\r\n\r\n0123456789` + 'HTTP/1.1 200 OK\r\nX: smuggled\r\n\r\n');
      return true;
    case '/stall-head':
      return false;
    case '/stall-body':
      socket.write(`HTTP/1.1 200 OK\r\n${CACHEABLE}Content-Length: 100000\r\n\r\n` + 'b'.repeat(100));
      return false;
    case '/bad-status':
      socket.end(`HTTP/1.1 2OO OK\r\n${CACHEABLE}Content-Length: 2\r\n\r\nok`);
      return false;
    case '/not-http':
      socket.end('SSH-2.0-OpenSSH_9.6\r\n\x00\x01\x02');
      return false;
    case '/hang-up':
      socket.end();
      return false;
    case '/reset':
      socket.resetAndDestroy();
      return false;
    default:
      socket.write(`HTTP/1.1 200 OK\r\n${CACHEABLE}Content-Type: text/plain\r\nContent-Length: 12\r\n\r\nhello, fine\n`);
      return true;
  }
}
