import * as http from 'node:http';
import * as net from 'node:net';
import type { AddressInfo } from 'node:net';
import { execFile } from 'node:child_process';
import { resolveConfig, type ConfigInput } from '../../src/core/config';
import { EventBus, type ProxyEvent } from '../../src/core/events';
import { RunningProxy } from '../../src/proxy';

export interface RecordedRequest {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

export interface TestOrigin {
  server: http.Server;
  port: number;
  /** Base URL, e.g. http://127.0.0.1:PORT */
  url: string;
  /** Every request received, in order. */
  requests: RecordedRequest[];
  /** How many requests reached a given path (pathname + search). */
  count(path: string): number;
  close(): Promise<void>;
}

export type OriginHandler = (req: http.IncomingMessage, res: http.ServerResponse, body: Buffer) => void;

/** A real origin on 127.0.0.1 that records what it receives. The handler sees the fully read body. */
export async function startOrigin(handler: OriginHandler): Promise<TestOrigin> {
  const requests: RecordedRequest[] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      requests.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body });
      handler(req, res, body);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  return {
    server,
    port,
    url: `http://127.0.0.1:${port}`,
    requests,
    count: (path) => requests.filter((r) => r.url === path).length,
    close: () => closeServer(server),
  };
}

export function closeServer(server: http.Server): Promise<void> {
  return new Promise((resolve) => {
    server.closeAllConnections?.();
    server.close(() => resolve());
  });
}

export interface TestProxy {
  proxy: RunningProxy;
  /** http://127.0.0.1:PORT */
  url: string;
  port: number;
  events: ProxyEvent[];
  close(): Promise<void>;
}

/** Starts the real proxy in this process on a free port; memory-only cache unless the input says otherwise. */
export async function startTestProxy(input: ConfigInput = {}): Promise<TestProxy> {
  const config = resolveConfig({ port: 0, ...input, cache: { dir: null, ...(input.cache ?? {}) } });
  const bus = new EventBus();
  const events: ProxyEvent[] = [];
  bus.on((e) => events.push(e));
  const proxy = await RunningProxy.start(config, bus);
  return { proxy, url: proxy.address.url, port: proxy.address.port, events, close: () => proxy.close(1000) };
}

export interface ClientResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
  text: string;
}

/** Sends one request through the proxy (absolute-form), as Node's http client does with a proxy. */
export function viaProxy(
  proxyPort: number,
  target: string,
  options: { method?: string; headers?: http.OutgoingHttpHeaders; body?: string | Buffer; agent?: http.Agent | false } = {},
): Promise<ClientResponse> {
  return new Promise((resolve, reject) => {
    const req = http.request({
      host: '127.0.0.1',
      port: proxyPort,
      method: options.method ?? 'GET',
      path: target,
      headers: {
        host: new URL(target).host,
        ...(options.body !== undefined ? { 'content-length': Buffer.byteLength(options.body) } : {}),
        ...options.headers,
      },
      agent: options.agent ?? false,
    });
    req.on('response', (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const body = Buffer.concat(chunks);
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body, text: body.toString('utf8') });
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(options.body);
  });
}

export interface CurlResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs the real curl binary. */
export function curl(args: string[], timeoutMs = 20_000): Promise<CurlResult> {
  return new Promise((resolve) => {
    execFile('curl', ['-sS', ...args], { timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024, encoding: 'utf8' }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as NodeJS.ErrnoException).code === 'number' ? Number((err as NodeJS.ErrnoException).code) : 1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Waits until `predicate` holds, polling; throws with `what` after timeoutMs. */
export async function waitFor(predicate: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

/** Sends raw bytes to a port and collects everything until the server closes (or idleMs of silence). */
export function rawExchange(port: number, data: string | Buffer, idleMs = 1000): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    let out = '';
    socket.setTimeout(idleMs, () => socket.end());
    socket.on('data', (c) => (out += c.toString('latin1')));
    socket.on('close', () => resolve(out));
    socket.on('error', reject);
    socket.write(data);
  });
}

