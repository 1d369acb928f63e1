import * as http from 'node:http';
import * as net from 'node:net';
import { randomBytes } from 'node:crypto';
import type { Duplex } from 'node:stream';
import { Admission, Refusal } from './admission';
import { quickTextResponse, sendText, writeRawResponse } from './answers';
import type { ProxyConfig } from './config';
import type { EventBus } from './events';
import { ProxyError, type Exchange, type QuickAnswer, type QuickPassThrough, type QuickRequest, type QuickResponder, type RequestHandler } from './exchange';
import { bodyBytes, VIA_NAME } from './forward';
import { forwardRequestHeaders, HOST_VALUE } from './headers';
import { parseSimpleRequest, plainPathStart } from './quickFront';
import { QuickRelay, type QuickConnections } from './quickForward';
import { giveToNode, takeFromNode } from './reclaim';
import type { OriginClient } from './origin';
import { describeNetworkError } from './origin';
import { parseAbsoluteTarget } from './target';
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
/** The origin response being relayed on a quick-path connection, if any. */
const RELAYING = Symbol('caching-proxy.relaying');
type QuickSocket = net.Socket & { [RELAYING]?: QuickRelay | null };

/** Where a quick pass-through request goes, taken from a normalised href (only when one is forwarded). */
interface QuickTarget {
  href: string;
  /** http://host[:port], the key of its QuickConnections. */
  origin: string;
  /** Origin-form: path and query. */
  path: string;
  hostname: string;
  port: number;
  /** host[:port] as in the href, for messages. */
  host: string;
}

function quickTargetOf(href: string): QuickTarget {
  const slash = href.indexOf('/', 7);
  const host = href.slice(7, slash);
  const colon = host.lastIndexOf(':');
  const hasPort = colon > host.lastIndexOf(']');
  const hostname = hasPort ? host.slice(0, colon) : host;
  return {
    href,
    origin: href.slice(0, slash),
    path: href.slice(slash),
    hostname: hostname.startsWith('[') ? hostname.slice(1, -1) : hostname,
    port: hasPort ? Number(host.slice(colon + 1)) : 80,
    host,
  };
}
const EXCHANGE = Symbol('caching-proxy.exchange');
type TrackedSocket = Duplex & { [CONNECTION]?: Connection };
type TrackedResponse = http.ServerResponse & { [EXCHANGE]?: ExchangeImpl; [CONNECTION]?: Connection };

function connectionOf(socket: Duplex): Connection {
  return ((socket as TrackedSocket)[CONNECTION] ??= { owed: 0, afterOwed: null, reading: null, distrusted: false });
}
/** Request ids run on across rebinds (a port change makes a new server), so log lines never repeat an id. */
let nextExchangeId = 1;

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
  private quick: QuickResponder | null = null;
  private quickPass: QuickPassThrough | null = null;
  /** Node's own 'connection' listener: a connection the quick path declines is handed to it. */
  private readonly nodeConnectionListeners: ((socket: net.Socket) => void)[];
  /** Connections still read by the quick path (not yet handed to Node's parser). */
  private readonly quickSockets = new Set<net.Socket>();
  /** Authority as sent -> as `new URL` writes it (null: not for the quick path). */
  private readonly quickAuthorities = new Map<string, string | null>();
  private readonly onQuickData: (this: net.Socket, chunk: Buffer) => void;
  private readonly onQuickEnd: (this: net.Socket) => void;
  private readonly onQuickClose: (this: net.Socket) => void;
  /** Quick-path connections relaying an origin's answer now. */
  private relaying = 0;
  private closing = false;
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
    this.onQuickData = function (this: net.Socket, chunk: Buffer) {
      server.quickData(this, chunk);
    };
    this.onQuickEnd = function (this: net.Socket) {
      this.end();
    };
    this.onQuickClose = function (this: QuickSocket) {
      server.quickSockets.delete(this);
      this[RELAYING]?.abort();
    };
    this.server.on('connection', (socket: net.Socket) => {
      socket.setTimeout(idleMs, () => socket.destroy());
      if (this.quick === null && this.quickPass === null) return this.handOver(socket, null);
      this.readQuick(socket);
    });
  }

  /** The quick path reads this connection (new, or taken back from Node's parser). */
  private readQuick(socket: net.Socket): void {
    this.quickSockets.add(socket);
    socket.on('data', this.onQuickData);
    socket.on('end', this.onQuickEnd);
    socket.on('close', this.onQuickClose);
    socket.on('error', destroySocket);
  }

  /** Answers from `quick` the requests it can, on connections no request has left the quick path on yet. */
  setQuickResponder(quick: QuickResponder | null, pass: QuickPassThrough | null = null): void {
    this.quick = quick;
    this.quickPass = pass;
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

  /**
   * One chunk from a connection still on the quick path. A simple request with a ready answer
   * is answered here, and one the cache says cannot be stored (QuickPassThrough) is forwarded
   * from here; anything else hands the connection, this chunk first, to Node's parser for good
   * (requests after it on that connection take the ordinary path).
   */
  private quickData(socket: QuickSocket, chunk: Buffer): void {
    if (socket[RELAYING]) {
      // Sent before the response being relayed is complete: read once it is.
      socket.pause();
      socket.unshift(chunk);
      return;
    }
    const quick = this.quick;
    const head = quick === null && this.quickPass === null ? null : parseSimpleRequest(chunk, this.config.maxHeaderBytes);
    if (head === null) return this.handOver(socket, chunk);
    const href = this.quickTarget(head.target);
    if (href === null || head.headers.via?.includes(this.viaName) || !HOST_VALUE.test(head.headers.host) || !this.admission.authorizedBy(head.headers['proxy-authorization'])) {
      return this.handOver(socket, chunk);
    }
    const started = this.events.active ? performance.now() : 0;
    const request: QuickRequest = { method: head.method, href, headers: head.headers };
    const answer = quick === null ? null : quick(request);
    if (answer === null) {
      const pass = this.quickPass;
      if (pass !== null) {
        const target = quickTargetOf(href);
        // Through an upstream proxy, or with every connection busy: the ordinary path (and its agent's queue).
        const connections = this.origin.route(target.hostname, target.port).proxy === null ? this.origin.quickConnections(target.origin) : null;
        const cacheStatus = connections?.available ? pass.decide(request) : null;
        if (cacheStatus !== null) return this.quickForward(socket, request, target, connections!, cacheStatus, pass);
      }
      return this.handOver(socket, chunk);
    }
    let flushed: boolean;
    if (answer.body === null) flushed = socket.write(answer.head);
    else {
      socket.cork();
      socket.write(answer.head);
      flushed = socket.write(answer.body);
      socket.uncork();
    }
    if (!flushed) {
      // A client that sends requests without reading the answers is not read until it does.
      socket.pause();
      socket.once('drain', () => {
        if (!socket[RELAYING]) socket.resume();
      });
    }
    if (this.events.active) this.quickEvents(head.method, href, answer, started);
  }

  /** Forwards a quick request over a keep-alive connection and relays the answer; the connection reads nothing else meanwhile. */
  private quickForward(socket: QuickSocket, request: QuickRequest, target: QuickTarget, connections: QuickConnections, cacheStatus: string, pass: QuickPassThrough): void {
    const id = nextExchangeId++;
    if (this.events.active) this.events.emit({ type: 'request', id, method: request.method, url: target.href, httpVersion: '1.1' });
    socket.pause();
    // Plain GET/HEAD fields only (see quickFront.ts): every value is one string.
    const headers = forwardRequestHeaders(request.headers, '1.1', this.viaName) as Record<string, string>;
    const started = performance.now();
    const attempt = (fresh: boolean) => {
      const { client, reused } = connections.take(fresh)!;
      const relay = new QuickRelay(
        socket,
        request.method,
        cacheStatus,
        (status, raw, lower) => pass.responded(request, status, raw, lower),
        (error) => {
          socket[RELAYING] = null;
          this.relaying--;
          connections.give(client, error === null);
          // A kept-alive connection the origin had just closed: once more on a new one, as Node's agent does.
          if (error !== null && reused && !relay.headSent && !socket.destroyed && (error as NodeJS.ErrnoException).code === 'UND_ERR_SOCKET' && connections.canOpen) {
            return attempt(true);
          }
          this.quickForwarded(socket, relay, error, id, request.method, target, cacheStatus, started);
        },
      );
      socket[RELAYING] = relay;
      this.relaying++;
      client.dispatch({ path: target.path, method: request.method, headers }, relay);
    };
    attempt(false);
  }

  private quickForwarded(socket: QuickSocket, relay: QuickRelay, error: Error | null, id: number, method: string, target: QuickTarget, cacheStatus: string, started: number): void {
    if (error !== null) {
      if (socket.destroyed) return; // the client left; the origin request was aborted for it
      const pe = describeNetworkError(error as NodeJS.ErrnoException, target.host);
      this.events.emit({ type: 'error', id, method, url: target.href, status: pe.status, code: pe.code, message: pe.message });
      if (relay.headSent) return void socket.destroy();
      // As the ordinary path answers (sendText): the connection stays open for the client's next request.
      socket.write(quickTextResponse(method, pe.status, pe.message, cacheStatus));
    } else if (this.events.active) {
      this.events.emit({ type: 'response', id, method, url: target.href, status: relay.status, bytes: relay.bytes, durationMs: performance.now() - started, cache: cacheStatus || undefined });
    }
    if (this.closing) socket.end();
    else socket.resume();
  }

  private quickEvents(method: string, url: string, answer: QuickAnswer, started: number): void {
    const id = nextExchangeId++;
    this.events.emit({ type: 'request', id, method, url, httpVersion: '1.1' });
    this.events.emit({
      type: 'response',
      id,
      method,
      url,
      status: answer.status,
      bytes: answer.bodyLength,
      durationMs: performance.now() - started,
      cache: answer.outcome,
    });
  }

  /**
   * The href of an absolute http target the quick path may serve, or null (routing, loops and
   * errors are the ordinary path's). Only the authority is parsed and remembered: with a
   * different URL on every request, remembering whole targets kept young strings alive until
   * they were promoted, and every hit then paid for old-generation collections.
   */
  private quickTarget(target: string): string | null {
    const slash = plainPathStart(target);
    if (slash < 0) return this.parsedTarget(target);
    const authority = target.slice(7, slash);
    let host = this.quickAuthorities.get(authority);
    if (host === undefined) {
      const url = this.parsedTarget(`http://${authority}/`);
      host = url === null ? null : url.slice(7, -1);
      if (this.quickAuthorities.size >= 256) this.quickAuthorities.clear();
      this.quickAuthorities.set(authority, host);
    }
    if (host === null) return null;
    return host === authority ? target : `http://${host}${target.slice(slash)}`;
  }

  private parsedTarget(target: string): string | null {
    // A bad target or one that loops: the ordinary path explains why.
    const url = parseAbsoluteTarget(target);
    return typeof url !== 'string' && !this.admission.targetsSelf(url.hostname, Number(url.port || 80)) ? url.href : null;
  }

  /** From now on Node's HTTP server reads this connection; `chunk` is the first it sees. */
  private handOver(socket: net.Socket, chunk: Buffer | null): void {
    if (chunk !== null) {
      this.quickSockets.delete(socket);
      socket.removeListener('data', this.onQuickData);
      socket.removeListener('end', this.onQuickEnd);
      socket.removeListener('close', this.onQuickClose);
      socket.removeListener('error', destroySocket);
    }
    giveToNode(socket, () => {
      for (const listener of this.nodeConnectionListeners) listener.call(this.server, socket);
    });
    // Node's listener is reading the socket now: the chunk is delivered to it at once, ahead of any later bytes.
    if (chunk !== null) socket.unshift(chunk);
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
    this.closing = true;
    for (const s of this.quickSockets) if (!(s as QuickSocket)[RELAYING]) s.end();
    this.tunnels.closeAll();
    const deadline = Date.now() + graceMs;
    while ((this.inFlight.size > 0 || this.relaying > 0) && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 25));
      this.server.closeIdleConnections();
    }
    this.server.closeAllConnections();
    for (const s of this.quickSockets) s.destroy();
    await closed;
    this.events.emit({ type: 'closed' });
  }

  private onRequest(req: http.IncomingMessage, res: http.ServerResponse): void {
    const id = nextExchangeId++;
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
    if (this.events.active) this.events.emit({ type: 'request', id: ex.id, method: ex.method, url: ex.url.href, httpVersion: ex.req.httpVersion });
    res[EXCHANGE] = ex;
  }

  /**
   * The last response owed on a connection Node's parser reads has closed: if the connection is
   * idle and kept alive, the quick path reads it again (a browser's connection that began with
   * a miss gets its later hits answered quickly).
   */
  private takeBack(res: TrackedResponse): void {
    if ((this.quick === null && this.quickPass === null) || this.closing || !res.shouldKeepAlive || (res as { _last?: boolean })._last) return;
    const socket = res.req?.socket;
    if (!(socket instanceof net.Socket) || !takeFromNode(socket)) return;
    socket.setTimeout(this.idleMs);
    this.readQuick(socket);
    socket.resume();
  }

  private responseClosed(res: TrackedResponse): void {
    const conn = res[CONNECTION];
    if (conn) {
      res[CONNECTION] = undefined;
      conn.owed = Math.max(0, conn.owed - 1);
      if (conn.owed === 0 && conn.afterOwed) conn.afterOwed();
      else if (conn.owed === 0 && !conn.distrusted) this.takeBack(res);
    }
    const ex = res[EXCHANGE];
    if (!ex) return;
    res[EXCHANGE] = undefined;
    this.inFlight.delete(res);
    if (!this.events.active) return;
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
    const id = nextExchangeId++;
    clientSocket.on('error', () => clientSocket.destroy());
    const target = this.admission.admit(req, 'connect');
    if (target instanceof Refusal) return this.refuseRaw(clientSocket, id, 'CONNECT', target);
    if (this.interceptor?.intercepts(target)) {
      // Decrypted, its requests come back through Node's parser and the same admission and handler as plain HTTP.
      this.tunnels.hold(clientSocket);
      this.interceptor.accept(id, target, clientSocket as net.Socket, head, this.idleMs, (tls) => this.handOver(tls, null));
      return;
    }
    this.tunnels.connect(id, this.origin, target, clientSocket, head, (status, message) => this.refuseRaw(clientSocket, id, 'CONNECT', new Refusal(status, message, target.authority)));
  }

  /** WebSocket and other Upgrade requests: forwarded as a request, then both sockets spliced. */
  private onUpgrade(req: http.IncomingMessage, clientSocket: Duplex, head: Buffer): void {
    const id = nextExchangeId++;
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

function destroySocket(this: net.Socket): void {
  this.destroy();
}
