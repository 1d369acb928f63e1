import * as http from 'node:http';
import * as net from 'node:net';
import * as vscode from 'vscode';
import type { CachingProxyApi, ShownNotification } from '../../src/extension/extension';
export { portAccepts } from '../helpers/ports';

export const EXTENSION_ID = 'caching-proxy.caching-proxy';

/** The extension's API plus what its events have shown so far (from the first getApi() on). */
export interface TestApi extends CachingProxyApi {
  readonly notifications: readonly ShownNotification[];
  /** "level text" per output channel line. */
  readonly logLines: readonly string[];
}

let observed: TestApi | null = null;

export async function getApi(): Promise<TestApi> {
  const ext = vscode.extensions.getExtension<CachingProxyApi>(EXTENSION_ID);
  if (!ext) throw new Error(`${EXTENSION_ID} is not installed`);
  const api = await ext.activate();
  if (observed?.controller === api.controller) return observed;
  const notifications: ShownNotification[] = [];
  const logLines: string[] = [];
  api.onDidNotify((n) => notifications.push(n));
  api.onDidLog((l) => logLines.push(`${l.level} ${l.text}`));
  observed = Object.assign(Object.create(api) as CachingProxyApi, { notifications, logLines });
  return observed;
}

export const settings = () => vscode.workspace.getConfiguration('cachingProxy');

/** Sets a user setting (as the Settings editor would) and waits until the extension has applied it. */
export async function setSetting(api: CachingProxyApi, key: string, value: unknown, target = vscode.ConfigurationTarget.Global): Promise<void> {
  await settings().update(key, value, target);
  await api.settled();
}

export interface Origin {
  url: string;
  port: number;
  hits: Map<string, number>;
  close(): Promise<void>;
}

/** A real origin on 127.0.0.1: cacheable JSON, text and a PNG-ish binary. */
export async function startOrigin(): Promise<Origin> {
  const hits = new Map<string, number>();
  const server = http.createServer((req, res) => {
    const path = req.url ?? '/';
    hits.set(path, (hits.get(path) ?? 0) + 1);
    if (path.startsWith('/data.json')) {
      res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'max-age=600', etag: '"v1"' });
      res.end('{"name":"caching-proxy","items":[1,2,3]}');
    } else if (path.startsWith('/image.png')) {
      res.writeHead(200, { 'content-type': 'image/png', 'cache-control': 'max-age=600' });
      res.end(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0, 0, 0, 0, 1, 2, 3]));
    } else {
      res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'max-age=600', 'last-modified': new Date(0).toUTCString() });
      res.end(`hello from ${path}`);
    }
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as net.AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    hits,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

export interface Fetched {
  status: number;
  headers: http.IncomingHttpHeaders;
  text: string;
}

/** One GET through the proxy in absolute form, as an HTTP_PROXY-aware client sends it. */
export function viaProxy(proxyPort: number, url: string): Promise<Fetched> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port: proxyPort, path: url, headers: { host: new URL(url).host }, agent: false });
    req.on('response', (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, text: Buffer.concat(chunks).toString() }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

export async function occupyPort(): Promise<{ port: number; close(): Promise<void> }> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  return { port: (s.address() as net.AddressInfo).port, close: () => new Promise<void>((r) => s.close(() => r())) };
}


export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls until `check` returns a truthy value; fails naming `what` after `timeoutMs`. */
type Truthy<T> = Exclude<T, false | null | undefined | '' | 0>;

export async function waitFor<T>(check: () => T | Promise<T>, what: string, timeoutMs = 10_000): Promise<Truthy<T>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value as Truthy<T>;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}
