import assert from 'node:assert/strict';
import * as net from 'node:net';

/**
 * A client that speaks raw HTTP/1.1 on one keep-alive connection, as curl and browsers do, and
 * reads the responses one by one (framed by Content-Length or chunked).
 */

export interface RawResponse {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/** A client connection that reads responses one by one, framed by Content-Length. */
export class RawClient {
  private buffer = Buffer.alloc(0);
  private waiting: (() => void) | null = null;
  closed = false;
  readonly socket: net.Socket;

  private constructor(socket: net.Socket) {
    this.socket = socket;
    socket.on('data', (c: Buffer) => {
      this.buffer = Buffer.concat([this.buffer, c]);
      this.waiting?.();
    });
    socket.on('close', () => {
      this.closed = true;
      this.waiting?.();
    });
  }

  static connect(port: number): Promise<RawClient> {
    return new Promise((resolve, reject) => {
      const socket = net.connect(port, '127.0.0.1', () => resolve(new RawClient(socket)));
      socket.setNoDelay(true);
      socket.once('error', reject);
    });
  }

  send(data: string): void {
    this.socket.write(data);
  }

  private async until(ready: () => boolean, what: string): Promise<void> {
    const deadline = Date.now() + 5000;
    while (!ready()) {
      if (this.closed) throw new Error(`connection closed while waiting for ${what}; got ${JSON.stringify(this.buffer.toString('latin1'))}`);
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; got ${JSON.stringify(this.buffer.toString('latin1'))}`);
      await new Promise<void>((r) => {
        this.waiting = r;
        setTimeout(r, 50);
      });
    }
  }

  /** The next response on the connection; `head` when it answers a HEAD (no body follows). */
  async response(head = false): Promise<RawResponse> {
    await this.until(() => this.buffer.indexOf('\r\n\r\n') >= 0, 'a response head');
    const end = this.buffer.indexOf('\r\n\r\n');
    const lines = this.buffer.toString('latin1', 0, end).split('\r\n');
    const headers: Record<string, string> = {};
    for (const line of lines.slice(1)) {
      const i = line.indexOf(':');
      headers[line.slice(0, i).toLowerCase()] = line.slice(i + 1).trim();
    }
    const status = Number(lines[0].split(' ')[1]);
    this.buffer = this.buffer.subarray(end + 4);
    if (head || status === 204 || status === 304) return { status, headers, body: '' };
    if (headers['transfer-encoding'] === undefined) {
      const length = Number(headers['content-length']);
      await this.until(() => this.buffer.length >= length, 'a response body');
      const body = this.buffer.toString('utf8', 0, length);
      this.buffer = this.buffer.subarray(length);
      return { status, headers, body };
    }
    assert.equal(headers['transfer-encoding'], 'chunked');
    const chunks: Buffer[] = [];
    for (;;) {
      await this.until(() => this.buffer.indexOf('\r\n') >= 0, 'a chunk size');
      const lineEnd = this.buffer.indexOf('\r\n');
      const size = parseInt(this.buffer.toString('latin1', 0, lineEnd), 16);
      assert.ok(Number.isInteger(size), `a chunk size line, got ${JSON.stringify(this.buffer.toString('latin1', 0, lineEnd))}`);
      await this.until(() => this.buffer.length >= lineEnd + 2 + size + 2, 'a chunk');
      chunks.push(this.buffer.subarray(lineEnd + 2, lineEnd + 2 + size));
      assert.equal(this.buffer.toString('latin1', lineEnd + 2 + size, lineEnd + 4 + size), '\r\n', 'CRLF after a chunk');
      this.buffer = this.buffer.subarray(lineEnd + 4 + size);
      if (size === 0) return { status, headers, body: Buffer.concat(chunks).toString('utf8') };
    }
  }

  get pending(): number {
    return this.buffer.length;
  }

  close(): void {
    this.socket.destroy();
  }
}

export function rawRequest(target: string, extra = '', method = 'GET'): string {
  return `${method} ${target} HTTP/1.1\r\nHost: ${new URL(target).host}\r\nUser-Agent: raw-test\r\nAccept: */*\r\n${extra}\r\n`;
}
