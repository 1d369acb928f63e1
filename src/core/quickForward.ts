import { STATUS_CODES } from 'node:http';
import type * as net from 'node:net';
import type { Client, Dispatcher } from 'undici';
import { VIA_NAME } from './forward';
import { forwardedHeadLines, lowerCaseNames } from './headers';

/**
 * undici is loaded on the first pass-through, not at start-up: evaluating its bundle added about
 * 30 ms to every start (80 -> 111 ms to listening), and many sessions never forward this way.
 */
let undiciClient: typeof Client | null = null;
function clientClass(): typeof Client {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return (undiciClient ??= (require('undici') as typeof import('undici')).Client);
}

/** Connections to one origin busy at once on the quick path; past it requests take the ordinary path, whose agent queues them. */
const MAX_BUSY = 256;
/** Idle keep-alive connections kept per origin. */
const MAX_IDLE = 256;

/**
 * Keep-alive connections to one origin for the quick pass-through: one undici Client per
 * connection, the most recently used first. Not undici's Pool: after an aborted response a
 * Client opens a fresh connection for the request it just dropped (nodejs/undici#5845), which
 * then idles with no timer; here a connection whose request was cut short is destroyed whole.
 */
export class QuickConnections {
  private readonly idle: Client[] = [];
  private busy = 0;
  private closed = false;
  private readonly options: Client.Options;

  constructor(
    private readonly origin: string,
    timeoutMs: number,
    idleMs: number,
  ) {
    this.options = {
      headersTimeout: timeoutMs,
      bodyTimeout: timeoutMs,
      connect: { timeout: timeoutMs },
      // An idle connection lives as long as the origin's Keep-Alive hint says, at most the proxy's own idle timeout.
      keepAliveTimeout: Math.min(4000, idleMs),
      keepAliveMaxTimeout: idleMs,
    };
  }

  /** Whether a request can have a connection now. */
  get available(): boolean {
    return this.idle.length > 0 || this.canOpen;
  }

  /** Whether a new connection may be opened now. */
  get canOpen(): boolean {
    return !this.closed && this.busy < MAX_BUSY;
  }

  /** A connection for one request (`reused`: it has served one before), or null when none is available. */
  take(fresh = false): { client: Client; reused: boolean } | null {
    const client = fresh ? undefined : this.idle.pop();
    if (client !== undefined) {
      this.busy++;
      return { client, reused: true };
    }
    if (!this.canOpen) return null;
    this.busy++;
    return { client: new (clientClass())(this.origin, this.options), reused: false };
  }

  /** A connection back after its request: kept when the response was complete, else destroyed. */
  give(client: Client, complete: boolean): void {
    this.busy--;
    if (complete && !this.closed && !client.destroyed && this.idle.length < MAX_IDLE) this.idle.push(client);
    else void client.destroy().catch(() => {});
  }

  /** Closes the idle connections; busy ones finish their response first. */
  close(): void {
    this.closed = true;
    for (const client of this.idle) void client.destroy().catch(() => {});
    this.idle.length = 0;
  }
}

/**
 * Relays one origin response, as undici delivers it, to a client socket on the quick path: the
 * head with hop-by-hop fields removed and Via, Date and Cache-Status added, then the body with
 * backpressure (chunked when the origin did not give a length). Node's ServerResponse is not
 * involved; undici (llhttp) parses the origin's side.
 */
export class QuickRelay implements Dispatcher.DispatchHandler {
  status = 0;
  bytes = 0;
  headSent = false;
  private abortRequest: ((reason?: Error) => void) | null = null;
  private resumeOrigin: (() => void) | null = null;
  private chunked = false;
  private aborted = false;

  constructor(
    private readonly socket: net.Socket,
    private readonly method: string,
    private readonly cacheStatus: string,
    private readonly onHead: (status: number, rawHeaders: string[], lowerNames: string[]) => void,
    private readonly onDone: (error: Error | null) => void,
  ) {}

  /** The client left: stop the origin request. */
  abort(): void {
    this.aborted = true;
    this.abortRequest?.(new Error('the client went away'));
    // A paused origin read (the client had stopped reading) never sees the abort: let undici read on and drop the connection.
    this.resumeOrigin?.();
  }

  onConnect(abort: (reason?: Error) => void): void {
    this.abortRequest = abort;
    if (this.aborted) abort(new Error('the client went away'));
  }

  onHeaders(status: number, rawHeaders: Buffer[], resume: () => void, statusText: string): boolean {
    // 1xx interim responses are not relayed (the client asked for nothing that needs them).
    if (status < 200) return true;
    const raw = new Array<string>(rawHeaders.length);
    for (let i = 0; i < rawHeaders.length; i++) raw[i] = rawHeaders[i].toString('latin1');
    const lower = lowerCaseNames(raw);
    this.onHead(status, raw, lower);
    const { lines, hasLength, hasDate } = forwardedHeadLines(raw, lower, '1.1', VIA_NAME);
    let head = `HTTP/1.1 ${status} ${statusText || STATUS_CODES[status] || 'Unknown'}\r\n${lines}`;
    if (this.cacheStatus) head += `Cache-Status: caching-proxy; ${this.cacheStatus}\r\n`;
    // RFC 9110 §6.6.1: a recipient with a clock forwards a response without Date with one.
    if (!hasDate) head += `Date: ${new Date().toUTCString()}\r\n`;
    const bodiless = this.method === 'HEAD' || status === 204 || status === 304;
    if (!bodiless && !hasLength) {
      this.chunked = true;
      head += 'Transfer-Encoding: chunked\r\n';
    }
    // Corked until the body's first chunk (usually read in the same tick) joins it: one write for both.
    this.socket.cork();
    this.socket.write(head + '\r\n', 'latin1');
    process.nextTick(uncork, this.socket);
    this.status = status;
    this.headSent = true;
    this.resumeOrigin = resume;
    return true;
  }

  onData(chunk: Buffer): boolean {
    this.bytes += chunk.length;
    const socket = this.socket;
    let flushed: boolean;
    if (this.chunked) {
      socket.cork();
      socket.write(`${chunk.length.toString(16)}\r\n`, 'latin1');
      socket.write(chunk);
      flushed = socket.write('\r\n', 'latin1');
      socket.uncork();
    } else {
      flushed = socket.write(chunk);
    }
    if (!flushed) socket.once('drain', this.resumeOrigin!);
    return flushed;
  }

  onComplete(): void {
    if (this.chunked) this.socket.write('0\r\n\r\n', 'latin1');
    this.onDone(null);
  }

  onError(err: Error): void {
    this.onDone(err);
  }
}

function uncork(socket: net.Socket): void {
  socket.uncork();
}
