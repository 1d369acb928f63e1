import { STATUS_CODES } from 'node:http';
import type * as net from 'node:net';
import { VIA_NAME } from '../forward';
import { forwardedHeadLines, lowerCaseNames } from '../headers';
import type { OriginConnection, OriginResponseHandler } from './originConnection';

/**
 * Relays one origin response, as the OriginConnection's parser delivers it, to a client socket
 * on the quick path: the head with hop-by-hop fields removed and Via, Date and Cache-Status
 * added, then the body with backpressure (chunked when the origin did not give a length). Node's
 * ServerResponse is not involved.
 */
export class QuickRelay implements OriginResponseHandler {
  status = 0;
  bytes = 0;
  headSent = false;
  private chunked = false;
  private corked = false;
  private readonly resumeOrigin: () => void;

  constructor(
    private readonly socket: net.Socket,
    private readonly origin: OriginConnection,
    private readonly method: string,
    private readonly cacheStatus: string,
    private readonly onHead: (status: number, rawHeaders: string[], lowerNames: string[]) => void,
    private readonly onDone: (error: Error | null) => void,
  ) {
    this.resumeOrigin = () => origin.resume();
  }

  /** The client left: stop the origin request (its connection is closed). */
  abort(): void {
    this.origin.abort(new Error('the client went away'));
  }

  onHeaders(status: number, raw: string[], statusText: string): void {
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
    // Corked until the end of this read from the origin, so the body read with it joins the head: one write.
    this.socket.cork();
    this.corked = true;
    this.socket.write(head + '\r\n', 'latin1');
    this.status = status;
    this.headSent = true;
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
    if (!flushed) socket.once('drain', this.resumeOrigin);
    return flushed;
  }

  onReadEnd(): void {
    this.uncork();
  }

  onComplete(): void {
    if (this.chunked) this.socket.write('0\r\n\r\n', 'latin1');
    this.uncork();
    this.socket.removeListener('drain', this.resumeOrigin);
    this.onDone(null);
  }

  onError(err: Error): void {
    this.uncork();
    this.socket.removeListener('drain', this.resumeOrigin);
    this.onDone(err);
  }

  private uncork(): void {
    if (!this.corked) return;
    this.corked = false;
    this.socket.uncork();
  }
}
