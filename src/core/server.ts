import * as http from 'node:http';
import * as net from 'node:net';
import { randomBytes } from 'node:crypto';
import type { Duplex } from 'node:stream';
import { Admission, Refusal } from './admission';
import { sendText, writeRawResponse } from './answers';
import type { ProxyConfig } from './config';
import type { EventBus } from './events';
import { newExchangeId, ProxyError, type Exchange, type RequestHandler } from './exchange';
import { bodyBytes, VIA_NAME } from './forward';
import { forwardRequestHeaders } from './headers';
import type { OriginClient } from './origin';
import { describeNetworkError } from './origin';
import { QuickFront } from './quick/front';
import type { QuickLane } from './quick/lane';
import type { Interceptor } from './tls/interceptor';
import { Tunnels } from './tunnels';
import { RespondingExchange } from './responding';

export interface ListenAddress {
  host: string;
  port: number;
  /** The proxy URL clients use, e.g. http://127.0.0.1:8899 */
  url: string;
}

/**
 * What the server keeps per client connection. It lives on the socket under a symbol and is
 * reached from each response the same way: several WeakMap lookups per request cost more
 * than the rest of a cache hit's bookkeeping together.
 */
interface Connection {
  /** Responses still owed, and the parse-error answer waiting for them (it must not overtake them). */
  owed: number;
  afterOwed: (() => void) | null;
  /** The latest request read: a parse error before it is complete is an error in its body. */
  reading: http.IncomingMessage | null;
  /** It sent a malformed request: requests Node already parsed after it are not forwarded. */
  distrusted: boolean;
}
const CONNECTION = Symbol('caching-proxy.connection');
const EXCHANGE = Symbol('caching-proxy.exchange');
type TrackedSocket = Duplex & { [CONNECTION]?: Connection };
type TrackedResponse = http.ServerResponse & { [EXCHANGE]?: ExchangeImpl; [CONNECTION]?: Connection };

function connectionOf(socket: Duplex): Connection {
  return ((socket as TrackedSocket)[CONNECTION] ??= { owed: 0, afterOwed: null, reading: null, distrusted: false });
}
class ExchangeImpl extends RespondingExchange implements Exchange {
  cacheOutcome?: string;
  private headersCache: http.OutgoingHttpHeaders | null = null;

  constructor(
    readonly id: number,
    readonly method: string,
    readonly url: URL,
    readonly req: http.IncomingMessage,
    readonly res: http.ServerResponse,
    readonly startedAt: number,
    readonly rewriteHeaders: ((raw: string[]) => string[]) | null,
    private readonly viaName: string,
  ) {
    super();
  }

  // Built on first use: a cache hit never needs it.
  get forwardHeaders(): http.OutgoingHttpHeaders {
    return (this.headersCache ??= forwardRequestHeaders(this.req.headers, this.req.httpVersion, this.viaName));
  }
}

/**
 * The HTTP front of the proxy: accepts absolute-form and path-style requests, CONNECT tunnels
 * and upgrades; checks credentials and loops; hands each routed request to the handler; answers
 * every failure with a status and a readable text body. Knows nothing of caching.
 */
export class ProxyServer {
  private readonly server: http.Server;
  private handler: RequestHandler;
  /** Node's own 'connection' listener: a connection the quick path declines is handed to it. */
  private readonly nodeConnectionListeners: ((socket: net.Socket) => void)[];
  /** The quick path (core/quick/): every new connection is read there first. */
  private readonly quick: QuickFront;
  private address: ListenAddress | null = null;
  private readonly inFlight = new Set<http.ServerResponse>();
  private readonly onResponseClose: (this: http.ServerResponse) => void;
  /** Our Via received-by token: a per-instance suffix tells our own requests coming back (loops) from chained instances. */
  readonly viaName = `${VIA_NAME}-${randomBytes(3).toString('hex')}`;
  private readonly admission: Admission;
  private readonly tunnels: Tunnels;
  private interceptor: Interceptor | null = null;
  private readonly idleMs: number;

  constructor(
    private readonly config: ProxyConfig,
    private readonly events: EventBus,
    private origin: OriginClient,
    handler: RequestHandler,
  ) {
    this.handler = handler;
    const server = this;
    this.onResponseClose = function (this: http.ServerResponse) {
      server.responseClosed(this);
    };
    this.admission = new Admission(config, this.viaName);
    this.tunnels = new Tunnels(events, this.viaName);
    const idleMs = Math.round(config.idleTimeoutSeconds * 1000);
    this.idleMs = idleMs;
    const headersMs = Math.round(config.headersTimeoutSeconds * 1000);
    this.server = http.createServer({
      maxHeaderSize: config.maxHeaderBytes,
      keepAliveTimeout: Math.min(30_000, idleMs),
      headersTimeout: headersMs,
      // Node checks the head deadline only this often (30 s by default): keep it a fraction of the deadline.
      connectionsCheckingInterval: Math.max(50, Math.min(30_000, Math.round(headersMs / 4))),
      requestTimeout: 0, // long uploads are fine; idle sockets are reclaimed by the socket timeout below
      noDelay: true,
      // Host is checked in requestHeadProblem, which answers with a readable reason.
      requireHostHeader: false,
    });
    // Node silently drops fields past this count (and so would forward a different request); the size limit bounds them instead.
    this.server.maxHeadersCount = 0;
    this.server.on('request', (req, res) => this.onRequest(req, res));
    this.server.on('connect', (req, socket, head) => this.onConnect(req, socket, head));
    this.server.on('upgrade', (req, socket, head) => this.onUpgrade(req, socket, head));
    this.server.on('clientError', (err, socket) => this.onClientError(err as NodeJS.ErrnoException, socket));
    this.nodeConnectionListeners = this.server.listeners('connection') as ((socket: net.Socket) => void)[];
    this.server.removeAllListeners('connection');
    this.quick = new QuickFront({
      config,
      events,
      admission: this.admission,
      viaName: this.viaName,
      origin: () => this.origin,
      connectToNode: (socket) => {
        for (const listener of this.nodeConnectionListeners) listener.call(this.server, socket);
      },
    });
    this.server.on('connection', (socket: net.Socket) => {
      socket.setTimeout(idleMs, () => socket.destroy());
      this.quick.accept(socket);
    });
  }

  /** The quick lane for plain requests read without Node's HTTP objects (null: none, every request takes the ordinary path). */
  setQuickLane(lane: QuickLane | null): void {
    this.quick.setLane(lane);
  }

  /** HTTPS interception for the CONNECTs it names (null: every CONNECT is a tunnel). */
  setInterceptor(interceptor: Interceptor | null): void {
    this.interceptor = interceptor;
  }

  setHandler(handler: RequestHandler): void {
    this.handler = handler;
  }

  /** New upstream/timeout settings take effect for the next request; open connections are untouched. */
  setOrigin(origin: OriginClient): void {
    this.origin = origin;
  }

  listen(): Promise<ListenAddress> {
    return new Promise((resolve, reject) => {
      const onError = (err: NodeJS.ErrnoException) => {
        this.server.off('listening', onListening);
        if (err.code === 'EADDRINUSE') {
          reject(new ProxyError(0, `port ${this.config.port} on ${this.config.host} is already in use`, 'EADDRINUSE'));
        } else if (err.code === 'EACCES') {
          reject(new ProxyError(0, `not allowed to listen on ${this.config.host}:${this.config.port} (ports below 1024 need privileges)`, 'EACCES'));
        } else if (err.code === 'EADDRNOTAVAIL' || err.code === 'ENOTFOUND') {
          reject(new ProxyError(0, `cannot listen on ${this.config.host}: no such address on this machine`, err.code));
        } else {
          reject(err);
        }
      };
      const onListening = () => {
        this.server.off('error', onError);
        const a = this.server.address() as net.AddressInfo;
        const host = a.family === 'IPv6' ? `[${a.address}]` : a.address;
        this.address = { host: a.address, port: a.port, url: `http://${host}:${a.port}` };
        this.admission.listening(a.address, a.port, this.address.url);
        this.events.emit({ type: 'listening', host: a.address, port: a.port, url: this.address.url });
        resolve(this.address);
      };
      this.server.once('error', onError);
      this.server.once('listening', onListening);
      this.server.listen({ port: this.config.port, host: this.config.host });
    });
  }

  get listenAddress(): ListenAddress | null {
    return this.address;
  }

  /**
   * Stops accepting, lets in-flight responses finish (up to graceMs), then closes everything.
   * Open tunnels are closed at once: they have no response to finish.
   */
  async close(graceMs = 10_000): Promise<void> {
    if (!this.server.listening) return;
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeIdleConnections();
    // Quick-path connections are idle between requests, but for one relaying an origin's answer: that one is ended when the answer is complete.
    this.quick.closing();
    this.tunnels.closeAll();
    const deadline = Date.now() + graceMs;
    while ((this.inFlight.size > 0 || this.quick.relaying > 0) && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 25));
      this.server.closeIdleConnections();
    }
    this.server.closeAllConnections();
    this.quick.destroyAll();
    await closed;
    this.events.emit({ type: 'closed' });
  }

  private onRequest(req: http.IncomingMessage, res: http.ServerResponse): void {
    const id = newExchangeId();
    const startedAt = performance.now();
    const method = req.method ?? 'GET';
    const conn = connectionOf(req.socket);
    conn.reading = req;
    conn.owed++;
    // One shared listener finds the connection (and later the exchange) on the response: no closure or once-wrapper per request.
    (res as TrackedResponse)[CONNECTION] = conn;
    res.on('close', this.onResponseClose);
    if (conn.distrusted) {
      // Pipelined behind a malformed request: its framing cannot be trusted. The connection closes after the error.
      req.resume();
      return;
    }
    const admitted = this.admission.admit(req, 'request');
    if (admitted instanceof Refusal) {
      if (admitted.close) conn.distrusted = true;
      this.events.emit({ type: 'error', id, method, url: admitted.url, status: admitted.status, message: admitted.message });
      sendText(res, admitted.status, admitted.message, admitted.close ? { ...admitted.headers, Connection: 'close' } : admitted.headers);
      return;
    }
    const { url, rewrite } = admitted;
    const ex = new ExchangeImpl(id, method, url, req, res, startedAt, rewrite, this.viaName);
    this.track(ex);
    this.handler(ex).catch((err: unknown) => this.fail(ex, err));
  }

  private track(ex: ExchangeImpl): void {
    const res = ex.res as TrackedResponse;
    this.inFlight.add(res);
    if (this.events.traced) this.events.emit({ type: 'request', id: ex.id, method: ex.method, url: ex.url.href, httpVersion: ex.req.httpVersion });
    res[EXCHANGE] = ex;
  }

  private responseClosed(res: TrackedResponse): void {
    const conn = res[CONNECTION];
    if (conn) {
      res[CONNECTION] = undefined;
      conn.owed = Math.max(0, conn.owed - 1);
      if (conn.owed === 0 && conn.afterOwed) conn.afterOwed();
      else if (conn.owed === 0 && !conn.distrusted) this.quick.takeBack(res);
    }
    const ex = res[EXCHANGE];
    if (!ex) return;
    res[EXCHANGE] = undefined;
    this.inFlight.delete(res);
    if (!this.events.informed) return;
    this.events.emit({
      type: 'response',
      id: ex.id,
      method: ex.method,
      url: ex.url.href,
      status: res.statusCode,
      bytes: bodyBytes(res),
      durationMs: performance.now() - ex.startedAt,
      cache: ex.cacheOutcome,
      aborted: res.writableFinished ? undefined : true,
    });
  }

  /** A handler failed: answer with its status if nothing was sent yet, otherwise break the connection. */
  private fail(ex: ExchangeImpl, err: unknown): void {
    const pe = err instanceof ProxyError ? err : describeNetworkError(err as NodeJS.ErrnoException, ex.url.host);
    if (pe.status === 499) {
      ex.res.destroy();
      return;
    }
    this.events.emit({ type: 'error', id: ex.id, method: ex.method, url: ex.url.href, status: pe.status, code: pe.code, message: pe.message });
    if (ex.res.headersSent) {
      ex.res.destroy();
      return;
    }
    sendText(ex.res, pe.status, pe.message, ex.cacheOutcome ? { 'Cache-Status': `caching-proxy; ${ex.cacheOutcome}` } : undefined);
  }

  private onConnect(req: http.IncomingMessage, clientSocket: Duplex, head: Buffer): void {
    const id = newExchangeId();
    clientSocket.on('error', () => clientSocket.destroy());
    const target = this.admission.admit(req, 'connect');
    if (target instanceof Refusal) return this.refuseRaw(clientSocket, id, 'CONNECT', target);
    if (this.interceptor?.intercepts(target)) {
      // Decrypted, its requests come back through Node's parser and the same admission and handler as plain HTTP.
      this.tunnels.hold(clientSocket);
      this.interceptor.accept(id, target, clientSocket as net.Socket, head, this.idleMs, (tls) => this.quick.handOver(tls, null));
      return;
    }
    this.tunnels.connect(id, this.origin, target, clientSocket, head, (status, message) => this.refuseRaw(clientSocket, id, 'CONNECT', new Refusal(status, message, target.authority)));
  }

  /** WebSocket and other Upgrade requests: forwarded as a request, then both sockets spliced. */
  private onUpgrade(req: http.IncomingMessage, clientSocket: Duplex, head: Buffer): void {
    const id = newExchangeId();
    const method = req.method ?? 'GET';
    clientSocket.on('error', () => clientSocket.destroy());
    const routed = this.admission.admit(req, 'upgrade');
    if (routed instanceof Refusal) return this.refuseRaw(clientSocket, id, method, routed);
    this.tunnels.upgrade(id, this.origin, req, routed.url, clientSocket, head, (status, message) => this.refuseRaw(clientSocket, id, method, new Refusal(status, message, req.url ?? '')));
  }

  /** A refused CONNECT or Upgrade: the error event, then the answer written on the socket, which closes. */
  private refuseRaw(socket: Duplex, id: number, method: string, refusal: Refusal): void {
    this.events.emit({ type: 'error', id, method, url: refusal.url, status: refusal.status, message: refusal.message });
    writeRawResponse(socket, refusal.status, refusal.message, refusal.headers);
  }

  private onClientError(err: NodeJS.ErrnoException, socket: Duplex): void {
    if (!socket.writable || err.code === 'ECONNRESET') {
      socket.destroy();
      return;
    }
    let status = 400;
    let message = `Bad request: ${err.message}`;
    if (err.code === 'HPE_HEADER_OVERFLOW') {
      status = 431;
      message = `Request header fields too large: the request head exceeds ${this.config.maxHeaderBytes} bytes.`;
    } else if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT' || err.code === 'ERR_HTTP_HEADERS_TIMEOUT') {
      status = 408;
      message = 'Request timeout: the request head did not arrive in time.';
    }
    this.events.emit({ type: 'error', status, code: err.code, message });
    const conn = connectionOf(socket);
    const current = conn.reading;
    if (current && !current.complete && !current.destroyed) {
      // The body of a request being forwarded is malformed. Whoever reads it (the upstream upload)
      // gets the error and aborts, so the origin sees an incomplete request, never a complete wrong
      // one; the handler then answers 400 if it still can. Destroying the request instead would
      // take the socket, and that answer, with it.
      if (current.listenerCount('error') > 0) current.emit('error', new ProxyError(status, message, err.code));
      conn.afterOwed = () => socket.end();
      return;
    }
    if (conn.owed > 0) {
      // Earlier pipelined requests are still being answered: written now, this error would read as their response.
      conn.afterOwed = () => {
        if (socket.writable) writeRawResponse(socket, status, message);
        else socket.destroy();
      };
      return;
    }
    writeRawResponse(socket, status, message);
  }
}
