import * as net from 'node:net';
import { sharedReads } from '../originReads';

/**
 * One kept-alive connection to an origin for the quick pass-through: the request head written
 * straight to the socket, the response read by Node's own HTTP parser (llhttp, native, strict:
 * the same parser Node's http client uses, without its ClientRequest and IncomingMessage). One
 * request at a time; never pipelined.
 *
 * It replaced an undici Client per connection: undici's dispatch and its llhttp in WebAssembly
 * cost about a fifth of a pass-through (session 7, docs/BENCHMARKS.md). What the Client did for
 * us is here: keep-alive as the origin allows it (its Keep-Alive hint), connect, head and body
 * timeouts, and a connection is reused only when its response ended exactly where its framing
 * said (no bytes after it, nothing left unread, not aborted).
 */

interface ParserBinding {
  new (): Parser;
  RESPONSE: number;
  kOnMessageBegin: number;
  kOnHeaders: number;
  kOnHeadersComplete: number;
  kOnBody: number;
  kOnMessageComplete: number;
  kLenientNone: number;
}

interface Parser {
  [key: number]: unknown;
  initialize(type: number, resource: object, maxHeaderSize: number, lenient: number): void;
  execute(data: Buffer): number | ParseError;
  finish(): undefined | ParseError;
  close(): void;
}

type ParseError = Error & { code: string; reason?: string; bytesParsed?: number };

const PARSER_FIELDS = ['RESPONSE', 'kOnMessageBegin', 'kOnHeaders', 'kOnHeadersComplete', 'kOnBody', 'kOnMessageComplete', 'kLenientNone'] as const;

/**
 * Node's HTTP parser as `_http_common` exports it, or null when that module or any part used here
 * is missing (a Node or Electron that changed its internals). The quick pass-through is then off
 * and every request takes the ordinary path: slower, never broken.
 */
// eslint-disable-next-line @typescript-eslint/no-require-imports
export function nodeHttpParser(load: (id: string) => unknown = require): ParserBinding | null {
  try {
    const parser = (load('_http_common') as { HTTPParser?: ParserBinding } | null)?.HTTPParser;
    if (typeof parser !== 'function') return null;
    for (const field of PARSER_FIELDS) if (typeof parser[field] !== 'number') return null;
    for (const method of ['initialize', 'execute', 'finish', 'close'] as const) {
      if (typeof (parser as unknown as { prototype: Record<string, unknown> }).prototype[method] !== 'function') return null;
    }
    return parser;
  } catch {
    return null;
  }
}

const PARSER = nodeHttpParser();
/** Whether this runtime lets the quick pass-through read origin answers (see nodeHttpParser). */
export const quickOriginSupported = PARSER !== null;

/** What receives one origin response; every call is made once, in order, onComplete or onError last. */
export interface OriginResponseHandler {
  /** The final response's head (1xx interim responses are skipped). */
  onHeaders(status: number, rawHeaders: string[], statusText: string): void;
  /** A piece of the body (chunked framing removed). False: stop reading the origin until `resume()`. */
  onData(chunk: Buffer): boolean;
  /** One read from the origin has been parsed and the response goes on (a place to flush writes). */
  onReadEnd(): void;
  onComplete(): void;
  onError(err: Error): void;
}

export interface OriginConnectionOptions {
  /** Connect, head and between-body-bytes timeout. */
  timeoutMs: number;
  /** How long an idle connection is kept when the origin gives no Keep-Alive hint. */
  keepAliveMs: number;
  /** The most an origin's Keep-Alive hint can keep it. */
  keepAliveMaxMs: number;
  /** Largest response head accepted (0: Node's default, 16 KiB). */
  maxHeaderBytes: number;
}

/** A Keep-Alive timeout hint is trusted less this much, for the origin's clock and the time on the wire. */
const KEEP_ALIVE_MARGIN_MS = 1000;
const KEEP_ALIVE_HINT = /(?:^|[,;\s])timeout\s*=\s*(\d+)/i;

function errorWithCode(message: string, code: string): Error {
  return Object.assign(new Error(message), { code });
}

export class OriginConnection {
  /** Requests sent on this connection so far. */
  requests = 0;
  private readonly socket: net.Socket;
  private readonly parser: Parser;
  private handler: OriginResponseHandler | null = null;
  private method = 'GET';
  /** Response bytes read for the current request (0: the origin has sent nothing yet). */
  private received = 0;
  private headersSeen = false;
  private completed = false;
  /** The final response's head said the connection may be kept. */
  private keepAlive = false;
  /** Anything but a clean end of exactly one response (extra bytes, a second message). */
  private dirty = false;
  private paused = false;
  private connected = false;
  private closed = false;
  /** Header fields Node's parser handed over early (more than 32 of them). */
  private partialHeaders: string[] = [];
  private idleMs: number;
  /** Consecutive socket timeouts (of `tickMs`) without a byte from the origin. */
  private quietTicks = 0;
  /** The socket's inactivity timeout now: min(timeout, keep-alive), or a shorter Keep-Alive hint while idle. */
  private timerMs: number;
  private readonly tickMs: number;

  constructor(
    host: string,
    port: number,
    private readonly options: OriginConnectionOptions,
    /** Called once when the connection has closed, for whoever keeps it idle. */
    private readonly onClosed: (connection: OriginConnection) => void,
  ) {
    this.idleMs = options.keepAliveMs;
    this.tickMs = Math.max(1, Math.min(options.timeoutMs, options.keepAliveMs));
    this.timerMs = this.tickMs;
    // Connections are only made when quickOriginSupported (QuickConnections.available).
    const HTTPParser = PARSER!;
    const parser = new HTTPParser();
    parser.initialize(HTTPParser.RESPONSE, {}, options.maxHeaderBytes, HTTPParser.kLenientNone);
    parser[HTTPParser.kOnMessageBegin] = () => {
      if (this.completed || this.handler === null) this.dirty = true;
    };
    parser[HTTPParser.kOnHeaders] = (fields: string[]) => {
      for (const f of fields) this.partialHeaders.push(f);
    };
    parser[HTTPParser.kOnHeadersComplete] = (
      _major: number,
      _minor: number,
      fields: string[] | undefined,
      _method: unknown,
      _url: unknown,
      status: number,
      statusText: string,
      upgrade: boolean,
      shouldKeepAlive: boolean,
    ) => this.headersComplete(fields, status, statusText, upgrade, shouldKeepAlive);
    parser[HTTPParser.kOnBody] = (chunk: Buffer) => this.body(chunk);
    parser[HTTPParser.kOnMessageComplete] = () => {
      if (this.headersSeen && !this.completed) this.completed = true;
    };
    this.parser = parser;

    // Reads land in the process's shared buffer (originReads.ts): data() parses each at once.
    const onread = sharedReads((chunk) => this.data(chunk));
    const socket = net.connect(onread ? { host, port, noDelay: true, onread } : { host, port, noDelay: true });
    socket.setTimeout(this.tickMs);
    socket.on('connect', () => (this.connected = true));
    if (!onread) socket.on('data', (chunk: Buffer) => this.data(chunk));
    socket.on('end', () => this.ended());
    socket.on('timeout', () => this.timedOut());
    socket.on('error', (err) => this.fail(err));
    socket.on('close', () => this.socketClosed());
    this.socket = socket;
  }

  get destroyed(): boolean {
    return this.closed || this.socket.destroyed;
  }

  /** The last response ended cleanly and the origin lets the connection be kept. */
  get reusable(): boolean {
    return this.keepAlive && !this.dirty && !this.destroyed && this.idleMs > 0;
  }

  /** Sends one request (its head through the blank line, latin1); the response goes to `handler`. */
  request(method: string, head: string, handler: OriginResponseHandler): void {
    this.handler = handler;
    this.method = method;
    this.received = 0;
    this.headersSeen = false;
    this.completed = false;
    this.keepAlive = false;
    this.quietTicks = 0;
    this.requests++;
    if (this.timerMs !== this.tickMs) this.socket.setTimeout((this.timerMs = this.tickMs));
    this.socket.write(head, 'latin1');
  }

  /** The handler is ready for more of the body. */
  resume(): void {
    if (!this.paused) return;
    this.paused = false;
    this.quietTicks = 0;
    this.socket.resume();
  }

  /** Stops the request under way (the client left): the connection is closed, the handler told. */
  abort(reason: Error): void {
    this.fail(reason);
  }

  /** Closes the connection (idle, or not to be reused). */
  destroy(): void {
    this.socket.destroy();
  }

  private data(chunk: Buffer): void {
    this.quietTicks = 0;
    if (this.handler === null) {
      // Bytes nobody asked for (an idle connection): it cannot be trusted for the next request.
      this.dirty = true;
      return void this.socket.destroy();
    }
    this.received += chunk.length;
    const result = this.parser.execute(chunk);
    if (this.completed) {
      if (typeof result !== 'number') this.dirty = true;
      return this.complete();
    }
    if (typeof result !== 'number') return this.fail(result);
    this.handler?.onReadEnd();
  }

  private headersComplete(fields: string[] | undefined, status: number, statusText: string, upgrade: boolean, shouldKeepAlive: boolean): number {
    let raw = fields ?? [];
    if (this.partialHeaders.length > 0) {
      raw = this.partialHeaders.concat(raw);
      this.partialHeaders = [];
    }
    if (this.handler === null || this.completed) {
      this.dirty = true;
      return 1;
    }
    if (upgrade || status === 101) {
      // Nothing asked to switch protocols.
      this.dirty = true;
      this.fail(errorWithCode(`Parse Error: an unrequested ${status} (protocol switch)`, 'HPE_UNEXPECTED_UPGRADE'));
      return 1;
    }
    // 1xx interim responses: skipped (nothing the client sent asks for one); the final one follows.
    if (status < 200) return 1;
    this.headersSeen = true;
    this.keepAlive = shouldKeepAlive;
    if (shouldKeepAlive) this.idleMs = this.keepAliveFor(raw);
    this.handler.onHeaders(status, raw, statusText);
    // A HEAD's response has no body, whatever its Content-Length says.
    return this.method === 'HEAD' ? 1 : 0;
  }

  private body(chunk: Buffer): void {
    const handler = this.handler;
    if (handler === null || this.completed) return;
    if (!handler.onData(chunk) && !this.paused) {
      this.paused = true;
      this.socket.pause();
    }
  }

  /** How long the connection may idle after this response: the origin's Keep-Alive hint, within our limits. */
  private keepAliveFor(raw: string[]): number {
    for (let i = 0; i < raw.length; i += 2) {
      if (raw[i].length !== 10 || raw[i].toLowerCase() !== 'keep-alive') continue;
      const m = KEEP_ALIVE_HINT.exec(raw[i + 1]);
      if (m) return Math.min(Number(m[1]) * 1000 - KEEP_ALIVE_MARGIN_MS, this.options.keepAliveMaxMs);
    }
    return this.options.keepAliveMs;
  }

  private complete(): void {
    const handler = this.handler!;
    this.handler = null;
    this.quietTicks = 0;
    if (this.paused) {
      // The response is all read: an idle connection reads on, to notice the origin closing it.
      this.paused = false;
      this.socket.resume();
    }
    if (!this.reusable) this.socket.destroy();
    else if (this.idleMs < this.tickMs) this.socket.setTimeout((this.timerMs = this.idleMs));
    handler.onComplete();
  }

  private ended(): void {
    if (this.handler === null) return void this.socket.destroy();
    // The origin closed its side: a body delimited by the close is complete now; anything else is cut short.
    const result = this.parser.finish();
    this.keepAlive = false;
    if (this.completed) return this.complete();
    this.fail(
      typeof result !== 'number' && result !== undefined && result.code !== 'HPE_INVALID_EOF_STATE'
        ? result
        : this.received === 0
          ? errorWithCode('the origin closed the connection', 'ECONNRESET')
          : errorWithCode('the origin closed the connection before the response was complete', 'ORIGIN_CLOSED'),
    );
  }

  private timedOut(): void {
    if (this.paused) return; // waiting for the client to read, not for the origin
    this.quietTicks++;
    const quietMs = this.quietTicks * this.timerMs;
    if (this.handler === null) {
      if (quietMs >= this.idleMs) this.socket.destroy();
      return;
    }
    if (quietMs < this.options.timeoutMs) return;
    if (!this.connected) this.fail(errorWithCode('connect timed out', 'ETIMEDOUT'));
    else if (!this.headersSeen) this.fail(errorWithCode('the origin sent no response head in time', 'HEADERS_TIMEOUT'));
    else this.fail(errorWithCode('the origin sent no body bytes in time', 'BODY_TIMEOUT'));
  }

  /** The request under way ends with `err` (once); the connection is closed. */
  private fail(err: Error): void {
    this.keepAlive = false;
    this.socket.destroy();
    const handler = this.handler;
    if (handler === null) return;
    this.handler = null;
    handler.onError(err);
  }

  private socketClosed(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.handler !== null) this.fail(errorWithCode('the origin connection closed', this.received === 0 ? 'ECONNRESET' : 'ORIGIN_CLOSED'));
    this.parser.close();
    this.onClosed(this);
  }

  /** Whether nothing at all came back for the request under way or just ended (a stale kept-alive connection). */
  get nothingReceived(): boolean {
    return this.received === 0;
  }
}
