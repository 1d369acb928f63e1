import * as http from 'node:http';
import * as https from 'node:https';
import * as net from 'node:net';
import { Readable } from 'node:stream';
import * as tls from 'node:tls';
import type { ProxyConfig } from './config';
import { ProxyError, type Origin, type UpstreamRequest } from './exchange';
import { forwardInterim } from './forward';
import { NoProxyList } from './noProxy';
import { OriginHttpAgent } from './originReads';
import { QuickPools } from './quick/connections';
import { UpstreamTunnelAgent } from './tls/tunnelAgent';
import { describeCertificateError, upstreamCaList } from './tls/upstreamTrust';

const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE', 'TRACE']);

/** Where traffic for an origin goes: straight to it, or through the configured upstream proxy. */
export interface Route {
  viaUpstream: boolean;
  /** The upstream proxy (when viaUpstream). */
  proxy: URL | null;
}

/**
 * Reaches origins over pooled keep-alive connections, directly or through an upstream proxy
 * (absolute-form requests), and turns every network failure into a ProxyError a client can read.
 */
export class OriginClient implements Origin {
  private readonly httpAgent: http.Agent;
  private readonly httpsAgent: https.Agent;
  private readonly upstream: URL | null;
  private readonly upstreamAuth: string | null;
  private readonly noProxy: NoProxyList;
  private readonly timeoutMs: number;
  private readonly agentOptions: https.AgentOptions;
  /**
   * The CAs origins are verified against, as one context made at start (undefined: Node's
   * store). Passed as a `ca` list instead, Node parsed its ~140 roots again for every new origin
   * connection: about 3 ms of CPU each (bench/https.mjs profile).
   */
  private readonly secureContext: tls.SecureContext | undefined;
  /** Keep-alive connections for the server's quick pass-through, per origin (see quick/connections.ts). */
  readonly quick: QuickPools;

  constructor(config: Pick<ProxyConfig, 'upstreamProxy' | 'noProxy' | 'timeoutSeconds'> & Partial<Pick<ProxyConfig, 'idleTimeoutSeconds' | 'https'>>) {
    // `timeout` also closes pooled connections left idle that long: without it up to 256 idle
    // connections per origin stayed open for as long as the origin tolerated them.
    const idleMs = Math.round((config.idleTimeoutSeconds ?? 120) * 1000);
    const agentOptions = { keepAlive: true, maxSockets: 256, maxFreeSockets: 256, scheduling: 'lifo' as const, timeout: idleMs };
    this.agentOptions = agentOptions;
    const ca = upstreamCaList(config.https?.upstreamCa ?? null);
    this.secureContext = ca === undefined ? undefined : tls.createSecureContext({ ca });
    this.httpAgent = new OriginHttpAgent(agentOptions);
    // Verified always (rejectUnauthorized is Node's default and never turned off).
    this.httpsAgent = new https.Agent({ ...agentOptions, secureContext: this.secureContext });
    this.upstream = config.upstreamProxy ? new URL(config.upstreamProxy) : null;
    this.upstreamAuth =
      this.upstream && this.upstream.username
        ? 'Basic ' + Buffer.from(`${decodeURIComponent(this.upstream.username)}:${decodeURIComponent(this.upstream.password)}`).toString('base64')
        : null;
    this.noProxy = new NoProxyList(config.noProxy);
    this.timeoutMs = Math.round(config.timeoutSeconds * 1000);
    this.quick = new QuickPools(this.timeoutMs, idleMs);
  }

  route(hostname: string, port: string | number): Route {
    const viaUpstream = this.upstream !== null && !this.noProxy.bypasses(hostname, port);
    return { viaUpstream, proxy: viaUpstream ? this.upstream : null };
  }

  get upstreamProxy(): URL | null {
    return this.upstream;
  }

  get upstreamAuthorization(): string | null {
    return this.upstreamAuth;
  }

  get timeout(): number {
    return this.timeoutMs;
  }

  /** TLS options for a connection of our own to an https origin (Upgrade requests): its name, verified. */
  tlsOptions(hostname: string): { servername?: string; secureContext?: tls.SecureContext } {
    const name = hostname.replace(/^\[|\]$/g, '');
    // RFC 6066: no SNI for an address.
    return { ...(net.isIP(name) ? {} : { servername: name }), secureContext: this.secureContext };
  }

  fetch(request: UpstreamRequest): Promise<http.IncomingMessage> {
    return this.attempt(request, true);
  }

  private attempt(request: UpstreamRequest, mayRetry: boolean): Promise<http.IncomingMessage> {
    const { url } = request;
    const secure = url.protocol === 'https:';
    const port = url.port || (secure ? '443' : '80');
    const route = this.route(url.hostname, port);
    const headers: http.OutgoingHttpHeaders = { ...request.headers, host: url.host };
    let options: https.RequestOptions;
    let client: typeof http | typeof https = http;
    if (route.proxy && !secure) {
      if (this.upstreamAuth) headers['proxy-authorization'] = this.upstreamAuth;
      options = {
        host: route.proxy.hostname.replace(/^\[|\]$/g, ''),
        port: route.proxy.port || 80,
        path: url.href,
        agent: this.httpAgent,
      };
    } else {
      client = secure ? https : http;
      options = {
        host: url.hostname.replace(/^\[|\]$/g, ''),
        port,
        path: url.pathname + url.search,
        // https through the upstream proxy: a CONNECT tunnel per pooled connection, TLS end to end.
        agent: secure ? (route.proxy ? this.tunnelAgent(route.proxy) : this.httpsAgent) : this.httpAgent,
        servername: secure && net.isIP(bareHostname(url)) === 0 ? url.hostname : undefined,
      };
    }
    options.method = request.method;
    options.headers = headers;
    const target = route.proxy ? `${url.host} via upstream proxy ${route.proxy.host}` : url.host;
    const signal = request.signal;
    const clientRes = request.client;
    if (signal?.aborted || (clientRes?.destroyed && !clientRes.writableFinished)) {
      return Promise.reject(describeNetworkError(abortError(), target, signal));
    }

    return new Promise((resolve, reject) => {
      const req = client.request(options);
      req.once('socket', releaseParserOnClose);
      // The abort signal is wired by hand rather than through the `signal` option: Node's version
      // also attaches end-of-stream tracking (half a dozen listeners) to every request.
      if (signal) {
        const onAbort = () => req.destroy(abortError());
        signal.addEventListener('abort', onAbort, { once: true });
        req.once('close', () => signal.removeEventListener('abort', onAbort));
      }
      if (clientRes) {
        // A plain listener: an AbortController per request cost about a seventh of the relay's CPU.
        const onClientClose = () => {
          if (!clientRes.writableFinished && !request.othersWaiting?.()) req.destroy(abortError());
        };
        clientRes.once('close', onClientClose);
        req.once('close', () => clientRes.removeListener('close', onClientClose));
        req.on('information', (info) => forwardInterim(clientRes, info));
      }
      let settled = false;
      req.setTimeout(this.timeoutMs, () => {
        if (!settled) {
          settled = true;
          reject(new ProxyError(504, `${target} did not answer within ${this.timeoutMs / 1000} s`, 'ETIMEDOUT'));
        }
        req.destroy(new Error('upstream timeout'));
      });
      req.once('response', (res) => {
        settled = true;
        // From here on the timeout guards stalls between body chunks.
        resolve(res);
      });
      req.once('error', (err: NodeJS.ErrnoException) => {
        if (settled) return;
        const body = request.body;
        const replayable = body === null || body === undefined || Buffer.isBuffer(body);
        // A pooled connection the origin closed just as we reused it: safe to try once more.
        if (mayRetry && req.reusedSocket && IDEMPOTENT.has(request.method) && replayable && !request.signal?.aborted &&
            (err.code === 'ECONNRESET' || err.code === 'EPIPE')) {
          settled = true;
          this.attempt(request, false).then(resolve, reject);
          return;
        }
        settled = true;
        reject(describeNetworkError(err, target, request.signal));
      });
      const body = request.body;
      if (body instanceof Readable) {
        body.pipe(req);
        body.once('error', (err) => req.destroy(err));
      } else {
        req.end(body ?? undefined);
      }
    });
  }

  private upstreamTunnels: UpstreamTunnelAgent | null = null;

  /** The agent for https origins through the upstream proxy `proxy` (CONNECT, then TLS end to end). */
  tunnelAgent(proxy: URL): UpstreamTunnelAgent {
    return (this.upstreamTunnels ??= new UpstreamTunnelAgent(proxy, this.upstreamAuth, this.timeoutMs, { ...this.agentOptions, secureContext: this.secureContext }));
  }

  close(): void {
    this.httpAgent.destroy();
    this.httpsAgent.destroy();
    this.upstreamTunnels?.destroy();
    this.quick.close();
  }
}

const watchedSockets = new WeakSet<object>();

/**
 * Works around a Node 20 leak (fixed upstream in nodejs/node PR #60187): when an origin sends
 * bytes after a complete response on a kept-alive connection, Node destroys the socket but
 * never frees its HTTP parser, which a native handle keeps alive (about 20 KB each). Node's own
 * close handling runs first and clears `socket.parser` whenever it frees it; one still set
 * when the socket has closed is that leaked parser.
 */
function releaseParserOnClose(socket: object): void {
  if (watchedSockets.has(socket)) return;
  watchedSockets.add(socket);
  const s = socket as { once(event: 'close', fn: () => void): void; parser?: { close?: () => void } | null };
  s.once('close', () => {
    const parser = s.parser;
    if (parser && typeof parser.close === 'function') {
      s.parser = null;
      parser.close();
    }
  });
}

/** The host without IPv6 brackets. */
function bareHostname(url: URL): string {
  return url.hostname.replace(/^\[|\]$/g, '');
}

function abortError(): Error {
  return Object.assign(new Error('The operation was aborted'), { name: 'AbortError', code: 'ABORT_ERR' });
}

export function describeNetworkError(err: NodeJS.ErrnoException, target: string, signal?: AbortSignal): ProxyError {
  // Already explained (e.g. the client's request body was malformed and aborted the upload).
  if (err instanceof ProxyError) return err;
  if (signal?.aborted || err.name === 'AbortError') return new ProxyError(499, `request to ${target} aborted: the client went away`, 'ABORTED');
  switch (err.code) {
    case 'UND_ERR_CONNECT_TIMEOUT':
      return new ProxyError(504, `connecting to ${target} timed out`, err.code);
    case 'UND_ERR_HEADERS_TIMEOUT':
    case 'UND_ERR_BODY_TIMEOUT':
    case 'HEADERS_TIMEOUT':
    case 'BODY_TIMEOUT':
      return new ProxyError(504, `${target} did not answer in time`, err.code);
    case 'UND_ERR_SOCKET':
    case 'ORIGIN_CLOSED':
      return new ProxyError(502, `${target} closed the connection before sending a complete response`, err.code);
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
    case 'EAI_NONAME':
      return new ProxyError(502, `could not resolve ${target}: no such host`, err.code);
    case 'ECONNREFUSED':
      return new ProxyError(502, `${target} refused the connection`, err.code);
    case 'ECONNRESET':
    case 'EPIPE':
      return new ProxyError(502, `${target} closed the connection before sending a response`, err.code);
    case 'ETIMEDOUT':
      return new ProxyError(504, `connecting to ${target} timed out`, err.code);
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
      return new ProxyError(502, `${target} is unreachable from this machine`, err.code);
    default:
      if (err.code?.startsWith('HPE_')) return new ProxyError(502, `${target} sent an invalid HTTP response (${err.message})`, err.code);
      const certificate = describeCertificateError(err, target);
      if (certificate) return certificate;
      if (err.code?.startsWith('ERR_TLS') || /certificate|SSL|TLS/i.test(err.message)) {
        return new ProxyError(502, `TLS handshake with ${target} failed: ${err.message}`, err.code);
      }
      return new ProxyError(502, `request to ${target} failed: ${err.message}`, err.code);
  }
}
