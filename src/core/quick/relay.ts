import { STATUS_CODES } from 'node:http';
import type * as net from 'node:net';
import type { Dispatcher } from 'undici';
import { VIA_NAME } from '../forward';
import { forwardedHeadLines, lowerCaseNames } from '../headers';

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
