import type * as http from 'node:http';
import * as net from 'node:net';
import type { Admission } from '../admission';
import type { ProxyConfig } from '../config';
import type { EventBus } from '../events';
import { newExchangeId } from '../exchange';
import { HOST_VALUE } from '../headers';
import type { OriginClient } from '../origin';
import { parseAbsoluteTarget } from '../target';
import { QuickForwarder, quickTargetOf, RELAYING, type QuickSocket } from './forward';
import type { QuickAnswer, QuickLane } from './lane';
import { giveToNode, takeFromNode } from './reclaim';
import { parseSimpleRequest, type QuickRequest } from './request';

/** What the quick front needs of the server it reads connections for. */
export interface QuickFrontHost {
  readonly config: ProxyConfig;
  readonly events: EventBus;
  readonly admission: Admission;
  readonly viaName: string;
  /** The origin client now (it changes with the upstream settings). */
  origin(): OriginClient;
  /** Node's HTTP server's own 'connection' listeners, called for a connection handed to it. */
  connectToNode(socket: net.Socket): void;
}

/**
 * The server's quick path: a new connection is first read here. A chunk holding exactly one
 * plain request goes to the quick lane's decision: answered at once from memory, forwarded
 * to the origin (hit-for-miss, or everything with caching off), or handed with what follows to
 * Node's parser. A connection Node's parser took is taken back once it is idle (takeBack).
 */
export class QuickFront {
  private lane: QuickLane | null = null;
  /** Connections still read here (not handed to Node's parser). */
  private readonly sockets = new Set<net.Socket>();
  /** Authority as sent -> as `new URL` writes it (null: not for the quick path). */
  private readonly authorities = new Map<string, string | null>();
  private readonly forwarder: QuickForwarder;
  private readonly onData: (this: net.Socket, chunk: Buffer) => void;
  private readonly onEnd: (this: net.Socket) => void;
  private readonly onClose: (this: net.Socket) => void;
  private readonly idleMs: number;

  constructor(private readonly host: QuickFrontHost) {
    const front = this;
    this.forwarder = new QuickForwarder(host.events, host.viaName);
    this.idleMs = Math.round(host.config.idleTimeoutSeconds * 1000);
    this.onData = function (this: net.Socket, chunk: Buffer) {
      front.data(this, chunk);
    };
    this.onEnd = function (this: net.Socket) {
      this.end();
    };
    this.onClose = function (this: QuickSocket) {
      front.sockets.delete(this);
      this[RELAYING]?.abort();
    };
  }

  /** The lane from now on (null: the quick path is off, every connection goes to Node's parser). */
  setLane(lane: QuickLane | null): void {
    this.lane = lane;
  }

  /** Quick-path connections relaying an origin's answer now (close waits for them). */
  get relaying(): number {
    return this.forwarder.relaying;
  }

  /** A new connection. */
  accept(socket: net.Socket): void {
    if (this.lane === null) this.handOver(socket, null);
    else this.read(socket);
  }

  /** This connection is read here (new, or taken back from Node's parser). */
  private read(socket: net.Socket): void {
    this.sockets.add(socket);
    socket.on('data', this.onData);
    socket.on('end', this.onEnd);
    socket.on('close', this.onClose);
    socket.on('error', destroySocket);
  }

  /**
   * One chunk from a connection still on the quick path: a plain request is decided on by the
   * lane; anything else hands the connection, this chunk first, to Node's parser.
   */
  private data(socket: QuickSocket, chunk: Buffer): void {
    if (socket[RELAYING]) {
      // Sent before the response being relayed is complete: read once it is.
      socket.pause();
      socket.unshift(chunk);
      return;
    }
    const lane = this.lane;
    const host = this.host;
    const head = lane === null ? null : parseSimpleRequest(chunk, host.config.maxHeaderBytes);
    if (head === null) return this.handOver(socket, chunk);
    const href = this.targetHref(head.target, head.pathStart);
    if (href === null || head.headers.via?.includes(host.viaName) || !HOST_VALUE.test(head.headers.host) || !host.admission.authorizedBy(head.headers['proxy-authorization'])) {
      return this.handOver(socket, chunk);
    }
    const started = host.events.informed ? performance.now() : 0;
    const request: QuickRequest = { method: head.method, href, headers: head.headers };
    const decision = lane!.decide(request);
    if (decision.kind === 'answer') return this.write(socket, request, lane!.answer(request, decision.stored), started);
    if (decision.kind === 'forward') {
      const target = quickTargetOf(href);
      const origin = host.origin();
      // Through an upstream proxy, or with every connection busy: the ordinary path (and its agent's queue).
      const connections = origin.route(target.hostname, target.port).proxy === null ? origin.quick.for(target.origin, target.hostname, target.port) : null;
      if (connections?.available) return this.forwarder.forward(socket, request, target, connections, decision.cacheStatus, lane!);
    }
    this.handOver(socket, chunk);
  }

  private write(socket: QuickSocket, request: QuickRequest, answer: QuickAnswer, started: number): void {
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
    const events = this.host.events;
    if (!events.informed) return;
    const id = newExchangeId();
    if (events.traced) events.emit({ type: 'request', id, method: request.method, url: request.href, httpVersion: '1.1' });
    events.emit({ type: 'response', id, method: request.method, url: request.href, status: answer.status, bytes: answer.bodyLength, durationMs: performance.now() - started, cache: answer.outcome });
  }

  /**
   * The href of an absolute http target the quick path may serve, or null (routing, loops and
   * errors are the ordinary path's). Only the authority is parsed and remembered: with a
   * different URL on every request, remembering whole targets kept young strings alive until
   * they were promoted, and every hit then paid for old-generation collections. `slash` is the
   * target's plainPathStart (read with the head).
   */
  private targetHref(target: string, slash: number): string | null {
    if (slash < 0) return this.parsedTarget(target);
    const authority = target.slice(7, slash);
    let host = this.authorities.get(authority);
    if (host === undefined) {
      const url = this.parsedTarget(`http://${authority}/`);
      host = url === null ? null : url.slice(7, -1);
      if (this.authorities.size >= 256) this.authorities.clear();
      this.authorities.set(authority, host);
    }
    if (host === null) return null;
    return host === authority ? target : `http://${host}${target.slice(slash)}`;
  }

  private parsedTarget(target: string): string | null {
    // A bad target or one that loops: the ordinary path explains why.
    const url = parseAbsoluteTarget(target);
    return typeof url !== 'string' && !this.host.admission.targetsSelf(url.hostname, Number(url.port || 80)) ? url.href : null;
  }

  /** From now on Node's HTTP server reads this connection; `chunk` is the first it sees. */
  handOver(socket: net.Socket, chunk: Buffer | null): void {
    if (chunk !== null) {
      this.sockets.delete(socket);
      socket.removeListener('data', this.onData);
      socket.removeListener('end', this.onEnd);
      socket.removeListener('close', this.onClose);
      socket.removeListener('error', destroySocket);
    }
    giveToNode(socket, () => this.host.connectToNode(socket));
    // Node's listener is reading the socket now: the chunk is delivered to it at once, ahead of any later bytes.
    if (chunk !== null) socket.unshift(chunk);
  }

  /**
   * The last response owed on a connection Node's parser reads has closed: if the connection is
   * idle and kept alive, the quick path reads it again (a browser's connection that began with
   * a miss gets its later hits answered quickly).
   */
  takeBack(res: http.ServerResponse): void {
    if (this.lane === null || this.forwarder.closing || !res.shouldKeepAlive || (res as { _last?: boolean })._last) return;
    const socket = res.req?.socket;
    if (!(socket instanceof net.Socket) || !takeFromNode(socket)) return;
    socket.setTimeout(this.idleMs);
    this.read(socket);
    socket.resume();
  }

  /** The server is closing: idle quick-path connections end now, one relaying an answer once it is complete. */
  closing(): void {
    this.forwarder.closing = true;
    for (const s of this.sockets) if (!(s as QuickSocket)[RELAYING]) s.end();
  }

  destroyAll(): void {
    for (const s of this.sockets) s.destroy();
  }
}

function destroySocket(this: net.Socket): void {
  this.destroy();
}
