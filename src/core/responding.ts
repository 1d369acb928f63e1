import type { IncomingMessage, ServerResponse } from 'node:http';
import type { FileHandle } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import type { Exchange } from './exchange';
import { streamFileRange } from './fileBody';
import { countBytes, relayResponse, responseHasNoBody, writeUpstreamHead } from './forward';

/**
 * How an Exchange writes its response: every head gets the path-style rewrite, every body byte
 * is counted for the log. Handlers (the cache) write through these, never on `res` directly.
 */
export abstract class RespondingExchange implements Pick<Exchange, 'respond' | 'sendHead' | 'writeBody' | 'endBody' | 'streamBody' | 'streamFile' | 'relay' | 'writeUpstreamHead'> {
  abstract readonly method: string;
  abstract readonly res: ServerResponse;
  abstract readonly rewriteHeaders: ((raw: string[]) => string[]) | null;

  respond(status: number, statusMessage: string | undefined, rawHeaders: string[], body: Buffer | null = null): void {
    this.sendHead(status, statusMessage, rawHeaders);
    if (body === null || responseHasNoBody(this.method, status)) {
      this.res.end();
      return;
    }
    countBytes(this.res, body.length);
    this.res.end(body);
  }

  sendHead(status: number, statusMessage: string | undefined, rawHeaders: string[]): void {
    const headers = this.rewriteHeaders ? this.rewriteHeaders(rawHeaders) : rawHeaders;
    if (statusMessage) this.res.writeHead(status, statusMessage, headers);
    else this.res.writeHead(status, headers);
  }

  writeBody(chunk: Buffer): boolean {
    countBytes(this.res, chunk.length);
    return this.res.write(chunk);
  }

  endBody(last: Buffer | null = null): void {
    if (last === null) {
      this.res.end();
      return;
    }
    countBytes(this.res, last.length);
    this.res.end(last);
  }

  streamBody(source: Readable): Promise<void> {
    const res = this.res;
    return new Promise<void>((resolve) => {
      source.on('data', (chunk: Buffer) => countBytes(res, chunk.length));
      source.once('error', (err) => {
        res.destroy(err);
        resolve();
      });
      res.once('close', () => {
        source.destroy();
        resolve();
      });
      source.pipe(res);
    });
  }

  streamFile(handle: FileHandle, start: number, end: number): Promise<void> {
    return streamFileRange(this.res, handle, start, end);
  }

  relay(upstream: IncomingMessage, extraHeaders: string[] = []): Promise<void> {
    return relayResponse(this as unknown as Exchange, upstream, extraHeaders);
  }

  writeUpstreamHead(upstream: IncomingMessage, extraHeaders: string[] = []): number {
    return writeUpstreamHead(this as unknown as Exchange, upstream, extraHeaders);
  }
}
