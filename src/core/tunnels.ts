import * as http from 'node:http';
import * as https from 'node:https';
import * as net from 'node:net';
import type { Duplex } from 'node:stream';
import { rawHead } from './answers';
import type { EventBus } from './events';
import { ProxyError } from './exchange';
import { appendVia, forwardRequestHeaders } from './headers';
import { describeNetworkError, type OriginClient } from './origin';
import type { ConnectTarget } from './target';
import { portOf } from './target';

/** Answers a tunnel that could not be opened (status + readable message), on the client's socket. */
export type Refuse = (status: number, message: string) => void;

/**
 * The connections the proxy splices rather than answers: CONNECT tunnels (bytes both ways, never
 * read) and Upgrade requests (the handshake forwarded, then bytes both ways). Open ones are
 * tracked so that closing the proxy closes them.
 */
export class Tunnels {
  private readonly open = new Set<Duplex>();

  constructor(
    private readonly events: EventBus,
    private readonly viaName: string,
  ) {}

  /**
   * A socket to `target`: directly, or through the upstream proxy's CONNECT. Resolves with it
   * and any bytes the upstream proxy sent past its 200; rejects with a ProxyError (502/504).
   */
  static openUpstream(origin: OriginClient, target: ConnectTarget, client: Duplex): Promise<{ socket: net.Socket; head: Buffer | null }> {
    const route = origin.route(target.hostname, target.port);
    const authority = target.authority;
    return new Promise((resolve, reject) => {
      if (route.proxy) {
        const proxy = route.proxy;
        const proxyReq = http.request({
          host: proxy.hostname.replace(/^\[|\]$/g, ''),
          port: proxy.port || 80,
          method: 'CONNECT',
          path: authority,
          headers: { host: authority, ...(origin.upstreamAuthorization ? { 'proxy-authorization': origin.upstreamAuthorization } : {}) },
          agent: false,
        });
        proxyReq.setTimeout(origin.timeout, () => proxyReq.destroy(new ProxyError(504, `upstream proxy ${proxy.host} did not answer CONNECT ${authority} in time`, 'ETIMEDOUT')));
        proxyReq.once('connect', (res, socket, upstreamHead) => {
          if (res.statusCode !== 200) {
            socket.destroy();
            return reject(new ProxyError(502, `upstream proxy ${proxy.host} refused CONNECT ${authority} with ${res.statusCode} ${res.statusMessage ?? ''}`.trim()));
          }
          resolve({ socket, head: upstreamHead });
        });
        proxyReq.once('error', (err: NodeJS.ErrnoException) => reject(describeNetworkError(err, `${authority} via upstream proxy ${proxy.host}`)));
        proxyReq.end();
        client.once('close', () => proxyReq.destroy());
        return;
      }
      const upstream = net.connect({ host: target.hostname, port: target.port });
      upstream.setTimeout(origin.timeout, () => upstream.destroy(new ProxyError(504, `connecting to ${authority} timed out after ${origin.timeout / 1000} s`, 'ETIMEDOUT')));
      upstream.once('connect', () => {
        upstream.removeAllListeners('error');
        upstream.setTimeout(0);
        resolve({ socket: upstream, head: null });
      });
      upstream.once('error', (err: NodeJS.ErrnoException) => reject(describeNetworkError(err, authority)));
      client.once('close', () => {
        if (upstream.connecting) upstream.destroy();
      });
    });
  }

  /** CONNECT: opens the upstream socket, answers 200, then splices the two. */
  connect(id: number, origin: OriginClient, target: ConnectTarget, client: Duplex, head: Buffer, refuse: Refuse): void {
    const started = performance.now();
    Tunnels.openUpstream(origin, target, client).then(
      ({ socket: upstream, head: upstreamHead }) => {
        if (client.destroyed) return void upstream.destroy();
        let bytesUp = head.length;
        let bytesDown = 0;
        this.events.emit({ type: 'tunnel-open', id, target: target.authority });
        client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
        if (head.length) upstream.write(head);
        if (upstreamHead?.length) client.write(upstreamHead);
        upstream.on('data', (c: Buffer) => (bytesDown += c.length));
        client.on('data', (c: Buffer) => (bytesUp += c.length));
        this.splice(client, upstream, () => {
          this.events.emit({ type: 'tunnel-close', id, target: target.authority, bytesUp, bytesDown, durationMs: performance.now() - started });
        });
      },
      (err: ProxyError) => refuse(err.status, err.message),
    );
  }

  /** An Upgrade request (WebSocket): forwarded as a request, then both sockets spliced; a refusal is relayed as is. */
  upgrade(id: number, origin: OriginClient, req: http.IncomingMessage, url: URL, client: Duplex, head: Buffer, refuse: Refuse): void {
    const headers = forwardRequestHeaders(req.headers, req.httpVersion, this.viaName);
    // The upgrade handshake itself is end-to-end here.
    headers.connection = 'Upgrade';
    headers.upgrade = req.headers.upgrade;
    headers.host = url.host;
    const protocol = String(req.headers.upgrade ?? '');
    const port = portOf(url);
    const route = origin.route(url.hostname, port);
    const secure = url.protocol === 'https:';
    // wss through the upstream proxy goes through its CONNECT, TLS end to end: never decrypted traffic in the clear.
    const options: https.RequestOptions = route.proxy && !secure
      ? { host: route.proxy.hostname.replace(/^\[|\]$/g, ''), port: route.proxy.port || 80, path: url.href, headers, agent: false }
      : { host: url.hostname.replace(/^\[|\]$/g, ''), port, path: url.pathname + url.search, headers, ...(secure ? origin.tlsOptions(url.hostname) : {}), agent: secure && route.proxy ? origin.tunnelAgent(route.proxy) : false };
    options.method = req.method ?? 'GET';
    const upstreamReq = (secure ? https : http).request(options);
    upstreamReq.setTimeout(origin.timeout, () => upstreamReq.destroy(new ProxyError(504, `${url.host} did not answer the upgrade in time`, 'ETIMEDOUT')));
    upstreamReq.once('upgrade', (res, upstreamSocket, upstreamHead) => {
      upstreamSocket.setTimeout(0);
      const fields = [...res.rawHeaders, 'Via', appendVia(undefined, res.httpVersion, this.viaName)];
      client.write(Buffer.from(rawHead(res.statusCode ?? 101, res.statusMessage, fields), 'latin1'));
      if (upstreamHead.length) client.write(upstreamHead);
      if (head.length) upstreamSocket.write(head);
      this.events.emit({ type: 'upgrade', id, url: url.href, protocol });
      this.splice(client, upstreamSocket, null);
    });
    upstreamReq.once('response', (res) => {
      // The origin declined to upgrade: relay its answer as is.
      const fields: string[] = [];
      for (let i = 0; i < res.rawHeaders.length; i += 2) {
        const name = res.rawHeaders[i].toLowerCase();
        if (name !== 'connection' && name !== 'transfer-encoding' && name !== 'keep-alive') fields.push(res.rawHeaders[i], res.rawHeaders[i + 1]);
      }
      fields.push('Connection', 'close');
      client.write(Buffer.from(rawHead(res.statusCode ?? 502, res.statusMessage, fields), 'latin1'));
      res.pipe(client);
    });
    upstreamReq.once('error', (err: NodeJS.ErrnoException) => {
      const pe = describeNetworkError(err, url.host);
      refuse(pe.status, pe.message);
    });
    upstreamReq.end();
  }

  /** Bytes both ways until either side closes; then both are closed, once. */
  private splice(client: Duplex, upstream: Duplex, onClose: (() => void) | null): void {
    this.open.add(client);
    upstream.pipe(client);
    client.pipe(upstream);
    let closed = false;
    const close = () => {
      if (closed) return;
      closed = true;
      this.open.delete(client);
      upstream.destroy();
      client.destroy();
      onClose?.();
    };
    upstream.once('close', close);
    client.once('close', close);
    upstream.on('error', close);
    client.on('error', close);
  }

  /** Tracks a connection the proxy holds open outside Node's server (an intercepted TLS one) so closeAll ends it. */
  hold(socket: Duplex): void {
    this.open.add(socket);
    socket.once('close', () => this.open.delete(socket));
  }

  closeAll(): void {
    for (const t of this.open) t.destroy();
  }
}
