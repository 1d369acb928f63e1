import type * as http from 'node:http';
import { startOrigin, startTestProxy, type TestOrigin, type TestProxy } from '../helpers/net';
import type { ConfigInput } from '../../src/core/config';

/** Last-Modified of the /lm case: fixed, long ago, so heuristics would call it fresh for days. */
export const LAST_MODIFIED = 'Mon, 01 Jan 2024 00:00:00 GMT';

/**
 * The origin every cache test talks to: one path per caching case. `state` lets a test change
 * what a path answers next (a new version, an error) without a new server.
 */
export interface CaseOrigin extends TestOrigin {
  state: Record<string, string | number | boolean>;
  /**
   * Makes `path` (/slow, /stampede) hold its answer until the returned release() is called, so a
   * test can line requests up behind it without depending on timing.
   */
  hold(path: string): () => void;
}

export async function startCaseOrigin(): Promise<CaseOrigin> {
  const state: Record<string, string | number | boolean> = {};
  const gates = new Map<string, Promise<void>>();
  const hold = (path: string) => {
    let release!: () => void;
    gates.set(path, new Promise<void>((r) => (release = r)));
    return () => {
      gates.delete(path);
      release();
    };
  };
  /** Runs fn once the path's gate (if any) opens, or after ms. */
  const later = (path: string, ms: number, fn: () => void) => {
    const gate = gates.get(path);
    if (gate) void gate.then(fn);
    else setTimeout(fn, ms);
  };
  const serve = (req: http.IncomingMessage, res: http.ServerResponse): void => {
    const url = new URL(req.url ?? '/', 'http://origin');
    const path = url.pathname;
    const version = String(state[path] ?? 'v1');
    const send = (status: number, headers: Record<string, string | string[]>, body: string | Buffer = '') => {
      res.writeHead(status, { 'Content-Type': 'text/plain', 'Content-Length': Buffer.byteLength(body), ...headers });
      res.end(req.method === 'HEAD' ? undefined : body);
    };
    const etag = `"${version}"`;
    if (state[`${path}#status`]) {
      send(Number(state[`${path}#status`]), {}, 'origin error');
      return;
    }
    switch (path) {
      case '/max-age':
      case '/html-asset':
        return send(200, { 'Cache-Control': 'max-age=60' }, `max-age ${version}`);
      case '/s-maxage':
        return send(200, { 'Cache-Control': 's-maxage=60, max-age=0' }, 's-maxage body');
      case '/expires':
        return send(200, { Expires: new Date(Date.now() + 60_000).toUTCString() }, 'expires body');
      case '/expired':
        return send(200, { Expires: new Date(Date.now() - 60_000).toUTCString() }, `expired ${version}`);
      case '/etag':
        if (req.headers['if-none-match'] === etag) return send(304, { ETag: etag, 'Cache-Control': 'max-age=0', 'X-Refreshed': 'yes' });
        return send(200, { ETag: etag, 'Cache-Control': 'max-age=0' }, `etag ${version}`);
      case '/etag-fresh':
        if (req.headers['if-none-match'] === etag) return send(304, { ETag: etag, 'Cache-Control': 'max-age=60' });
        return send(200, { ETag: etag, 'Cache-Control': 'max-age=60' }, `etag-fresh ${version}`);
      case '/stampede':
        // Stale at once; a (slow) 304 makes it fresh for a minute.
        if (req.headers['if-none-match'] === etag) {
          later(path, 200, () => send(304, { ETag: etag, 'Cache-Control': 'max-age=60' }));
          return;
        }
        return send(200, { ETag: etag, 'Cache-Control': 'max-age=0' }, `stampede ${version}`);
      case '/lm': {
        const ims = req.headers['if-modified-since'];
        if (ims && version === 'v1' && Date.parse(ims) >= Date.parse(LAST_MODIFIED)) return send(304, { 'Last-Modified': LAST_MODIFIED, 'Cache-Control': 'max-age=0' });
        return send(200, { 'Last-Modified': LAST_MODIFIED, 'Cache-Control': 'max-age=0' }, `lm ${version}`);
      }
      case '/heuristic':
        return send(200, {}, 'no freshness stated');
      case '/no-store':
        return send(200, { 'Cache-Control': 'no-store' }, 'no-store body');
      case '/no-cache':
        if (req.headers['if-none-match'] === etag) return send(304, { ETag: etag, 'Cache-Control': 'no-cache' });
        return send(200, { 'Cache-Control': 'no-cache', ETag: etag }, `no-cache ${version}`);
      case '/must-revalidate':
        if (req.headers['if-none-match'] === etag) return send(304, { ETag: etag, 'Cache-Control': 'max-age=0, must-revalidate' });
        return send(200, { 'Cache-Control': 'max-age=0, must-revalidate', ETag: etag }, 'must-revalidate body');
      case '/must-revalidate-fresh':
        return send(200, { 'Cache-Control': 'max-age=60, must-revalidate' }, 'fresh until it is not');
      case '/private':
        return send(200, { 'Cache-Control': 'private, max-age=60' }, 'private body');
      case '/auth':
        return send(200, { 'Cache-Control': 'max-age=60' }, `for ${req.headers.authorization ?? 'nobody'}`);
      case '/auth-public':
        return send(200, { 'Cache-Control': 'public, max-age=60' }, 'public for authenticated');
      case '/vary':
        return send(200, { 'Cache-Control': 'max-age=60', Vary: 'Accept-Language' }, `lang ${req.headers['accept-language'] ?? 'none'}`);
      case '/vary-star':
        return send(200, { 'Cache-Control': 'max-age=60', Vary: '*' }, 'vary star');
      case '/cookie':
        return send(200, { 'Cache-Control': 'max-age=60', 'Set-Cookie': ['session=abc; HttpOnly', 'theme=dark'] }, 'cookie body');
      case '/swr':
        return send(200, { 'Cache-Control': 'max-age=0, stale-while-revalidate=60', ETag: etag }, `swr ${version}`);
      case '/sie':
        return send(200, { 'Cache-Control': 'max-age=0, stale-if-error=60' }, `sie ${version}`);
      case '/stale':
        return send(200, { 'Cache-Control': 'max-age=0' }, `stale ${version}`);
      case '/image':
        return send(200, { 'Cache-Control': 'max-age=60', 'Content-Type': 'image/png' }, 'png bytes');
      case '/big': {
        const size = Number(url.searchParams.get('size') ?? 1024 * 1024);
        return send(200, { 'Cache-Control': 'max-age=60', 'Content-Type': 'application/octet-stream' }, Buffer.alloc(size, version));
      }
      case '/chunked-big': {
        // No Content-Length: the size is only known while streaming.
        const size = Number(url.searchParams.get('size') ?? 1024 * 1024);
        res.writeHead(200, { 'Cache-Control': 'max-age=60' });
        const chunk = Buffer.alloc(64 * 1024, 'c');
        let sent = 0;
        const pump = () => {
          while (sent < size) {
            sent += chunk.length;
            if (!res.write(chunk)) return void res.once('drain', pump);
          }
          res.end();
        };
        return pump();
      }
      case '/slow': {
        // Headers now, body after a pause: concurrent clients arrive while it is in flight.
        res.writeHead(200, { 'Cache-Control': 'max-age=60', 'Content-Length': 10 });
        res.write('slow ');
        later(path, 300, () => res.end('body!'));
        return;
      }
      case '/held-headers':
        // Nothing at all until released: a client can leave before the response starts.
        return later(path, 50, () => {
          // Chunked, in two writes: the body streams rather than arriving as one last chunk.
          res.writeHead(200, { 'Cache-Control': 'max-age=60', 'Content-Type': 'text/plain' });
          res.write('held ');
          setTimeout(() => res.end('body'), 20);
        });
      case '/slow-no-store': {
        res.writeHead(200, { 'Cache-Control': 'no-store', 'Content-Length': 10 });
        res.write('slow ');
        later(path, 50, () => res.end('body!'));
        return;
      }
      case '/abort': {
        res.writeHead(200, { 'Cache-Control': 'max-age=60', 'Content-Length': 100 });
        res.write('only part of the body');
        setTimeout(() => res.destroy(), 50);
        return;
      }
      case '/page':
        return send(
          200,
          { 'Cache-Control': 'max-age=60', 'Content-Type': 'text/html; charset=utf-8' },
          `<!doctype html><html><head><link rel="stylesheet" href="/style.css"><script src="/app.js"></script>
           <!-- <a href="/commented-out">no</a> --></head>
           <body><a href="/about">About</a><img src="img.png"><a href="http://elsewhere.example/x">off-site</a>
           <a href="/about#team">same page again</a></body></html>`,
        );
      case '/page-slow':
        return send(200, { 'Cache-Control': 'max-age=60', 'Content-Type': 'text/html' }, '<a href="/slow">slow</a>');
      case '/page8':
        return send(
          200,
          { 'Cache-Control': 'max-age=60', 'Content-Type': 'text/html' },
          Array.from({ length: 8 }, (_, i) => `<img src="/slow-asset?i=${i}">`).join('\n'),
        );
      case '/slow-asset': {
        // Tracks how many run at once, for the prefetch concurrency limit.
        state.inFlight = Number(state.inFlight ?? 0) + 1;
        state.maxInFlight = Math.max(Number(state.maxInFlight ?? 0), Number(state.inFlight));
        setTimeout(() => {
          state.inFlight = Number(state.inFlight) - 1;
          send(200, { 'Cache-Control': 'max-age=60' }, `asset ${url.search}`);
        }, 80);
        return;
      }
      case '/style.css':
      case '/app.js':
      case '/about':
      case '/img.png':
        return send(200, { 'Cache-Control': 'max-age=60' }, `asset ${path}`);
      case '/item':
        if (req.method === 'GET') return send(200, { 'Cache-Control': 'max-age=60' }, `item ${version}`);
        state['/item'] = 'v2';
        return send(200, { Location: '/moved', 'Content-Location': '/item-view' }, 'changed');
      case '/moved':
      case '/item-view':
        return send(200, { 'Cache-Control': 'max-age=60' }, `${path} ${version}`);
      case '/redirect':
        return send(302, { Location: '/max-age' }, '');
      default:
        return send(404, { 'Cache-Control': 'max-age=60' }, 'not found');
    }
  };
  const origin = await startOrigin(serve);
  return Object.assign(origin, { state, hold });
}

/** One origin and one proxy for a test; both closed afterwards. */
export async function withProxy(input: ConfigInput, fn: (origin: CaseOrigin, proxy: TestProxy) => Promise<void>): Promise<void> {
  return withOriginAndProxy(await startCaseOrigin(), input, fn);
}

/** A proxy for a test in front of the given origin; both closed afterwards. */
export async function withOriginAndProxy<O extends TestOrigin>(origin: O, input: ConfigInput, fn: (origin: O, proxy: TestProxy) => Promise<void>): Promise<void> {
  const proxy = await startTestProxy(input);
  try {
    await fn(origin, proxy);
  } finally {
    await proxy.close();
    await origin.close();
  }
}

export function cacheEvents(proxy: TestProxy, action?: string): Array<{ action: string; url: string; reason?: string }> {
  return proxy.events.filter((e): e is Extract<typeof e, { type: 'cache' }> => e.type === 'cache' && (action === undefined || e.action === action));
}
