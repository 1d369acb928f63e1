import type * as net from 'node:net';
import { quickTextResponse } from '../answers';
import type { EventBus } from '../events';
import { newExchangeId } from '../exchange';
import { forwardRequestHeadLines } from '../headers';
import { describeNetworkError } from '../origin';
import type { QuickConnections } from './connections';
import type { QuickLane } from './lane';
import { QuickRelay } from './relay';
import type { QuickRequest } from './request';

/** The origin response being relayed on a quick-path connection, if any. */
export const RELAYING = Symbol('caching-proxy.relaying');
export type QuickSocket = net.Socket & { [RELAYING]?: QuickRelay | null };

/** Where a quick pass-through request goes, taken from a normalised href (only when one is forwarded). */
export interface QuickTarget {
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

export function quickTargetOf(href: string): QuickTarget {
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

/**
 * The quick pass-through: a plain request forwarded over a kept-alive origin connection straight
 * to the origin, the response relayed to the socket as it comes. The connection reads nothing
 * else meanwhile (a request pipelined behind it waits in the socket).
 */
export class QuickForwarder {
  /** Quick-path connections relaying an origin's answer now. */
  relaying = 0;
  /** The server is closing: a connection is ended once its answer is relayed. */
  closing = false;

  constructor(
    private readonly events: EventBus,
    private readonly viaName: string,
  ) {}

  forward(socket: QuickSocket, request: QuickRequest, target: QuickTarget, connections: QuickConnections, cacheStatus: string, lane: QuickLane): void {
    const id = newExchangeId();
    lane.forwarding(request);
    if (this.events.traced) this.events.emit({ type: 'request', id, method: request.method, url: target.href, httpVersion: '1.1' });
    socket.pause();
    // Plain GET/HEAD fields only (see request.ts): every value is one string, no body. Host is the target's, as a client sends it.
    const head = `${request.method} ${target.path} HTTP/1.1\r\nhost: ${target.host}\r\nconnection: keep-alive\r\n${forwardRequestHeadLines(request.headers, this.viaName)}\r\n`;
    const started = performance.now();
    const attempt = (fresh: boolean) => {
      const { connection, reused } = connections.take(fresh)!;
      const relay = new QuickRelay(
        socket,
        connection,
        request.method,
        cacheStatus,
        (status, raw, lower) => lane.responded(request, status, raw, lower),
        (error) => {
          socket[RELAYING] = null;
          this.relaying--;
          connections.give(connection, error === null);
          // A kept-alive connection the origin had just closed (nothing came back): once more on a new one, as Node's agent does.
          if (error !== null && reused && connection.nothingReceived && !socket.destroyed && isStaleConnectionError(error) && connections.canOpen) {
            return attempt(true);
          }
          this.finished(socket, relay, error, id, request.method, target, cacheStatus, started);
        },
      );
      socket[RELAYING] = relay;
      this.relaying++;
      connection.request(request.method, head, relay);
    };
    attempt(false);
  }

  private finished(socket: QuickSocket, relay: QuickRelay, error: Error | null, id: number, method: string, target: QuickTarget, cacheStatus: string, started: number): void {
    if (error !== null) {
      if (socket.destroyed) return; // the client left; the origin request was aborted for it
      const pe = describeNetworkError(error as NodeJS.ErrnoException, target.host);
      this.events.emit({ type: 'error', id, method, url: target.href, status: pe.status, code: pe.code, message: pe.message });
      if (relay.headSent) return void socket.destroy();
      // As the ordinary path answers (sendText): the connection stays open for the client's next request.
      socket.write(quickTextResponse(method, pe.status, pe.message, cacheStatus));
    } else if (this.events.informed) {
      this.events.emit({ type: 'response', id, method, url: target.href, status: relay.status, bytes: relay.bytes, durationMs: performance.now() - started, cache: cacheStatus || undefined });
    }
    if (this.closing) socket.end();
    else socket.resume();
  }
}

/** What a kept-alive connection the origin closed as the request went out looks like. */
function isStaleConnectionError(error: Error): boolean {
  const code = (error as NodeJS.ErrnoException).code;
  return code === 'ECONNRESET' || code === 'EPIPE' || code === 'ORIGIN_CLOSED';
}
