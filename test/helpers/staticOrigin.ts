import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';
import type { AddressInfo } from 'node:net';
import * as path from 'node:path';

/**
 * A file server shaped like a package mirror: it serves a folder as it is, with Content-Length,
 * Last-Modified and an ETag, and no caching headers at all (what many mirrors send). It counts
 * the requests per path, and can be stopped to play an unreachable origin.
 */
export interface StaticOrigin {
  url: string;
  port: number;
  /** Requests per path (pathname), including conditional ones. */
  count(pathname: string): number;
  requests: Array<{ method: string; path: string; headers: http.IncomingHttpHeaders; status: number }>;
  close(): Promise<void>;
}

export async function startStaticOrigin(root: string, options: { tls?: { key: Buffer; cert: Buffer }; rewrite?: (body: Buffer, pathname: string, base: string) => Buffer } = {}): Promise<StaticOrigin> {
  const requests: StaticOrigin['requests'] = [];
  let base = '';
  const handler = (req: http.IncomingMessage, res: http.ServerResponse) => {
    const pathname = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
    let file = path.join(root, path.normalize(pathname));
    // A folder is served by its index.html, as mirrors' simple indexes are.
    if (pathname.endsWith('/')) file = path.join(file, 'index.html');
    const record = (status: number) => requests.push({ method: req.method ?? '', path: pathname, headers: req.headers, status });
    let stat: fs.Stats | null = null;
    try {
      stat = fs.statSync(file);
    } catch {
      // answered 404 below
    }
    if (!file.startsWith(root) || !stat || !stat.isFile()) {
      record(404);
      res.writeHead(404, { 'Content-Type': 'text/plain', 'Content-Length': 10 }).end('not found\n');
      return;
    }
    let body: Buffer = fs.readFileSync(file);
    if (options.rewrite) body = options.rewrite(body, pathname, base);
    const etag = `"${crypto.createHash('sha1').update(body).digest('hex').slice(0, 16)}"`;
    const lastModified = new Date(Math.floor(stat.mtimeMs / 1000) * 1000).toUTCString();
    if (req.headers['if-none-match'] === etag) {
      record(304);
      res.writeHead(304, { ETag: etag, 'Last-Modified': lastModified }).end();
      return;
    }
    record(200);
    res.writeHead(200, { 'Content-Type': file.endsWith('.html') ? 'text/html; charset=utf-8' : 'application/octet-stream', 'Content-Length': body.length, ETag: etag, 'Last-Modified': lastModified });
    res.end(req.method === 'HEAD' ? undefined : body);
  };
  const server = options.tls ? https.createServer({ key: options.tls.key, cert: options.tls.cert }, handler) : http.createServer(handler);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  const url = `${options.tls ? 'https' : 'http'}://${options.tls ? 'localhost' : '127.0.0.1'}:${port}`;
  base = url;
  return {
    url,
    port,
    requests,
    count: (p) => requests.filter((r) => r.path === p).length,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections?.();
        server.close(() => resolve());
      }),
  };
}
