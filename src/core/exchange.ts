import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import type { FileHandle } from 'node:fs/promises';
import type { Readable } from 'node:stream';

/**
 * One client request the proxy is answering, after routing: the target is known and absolute.
 * A RequestHandler (the pass-through forwarder, or the cache in front of it) answers it.
 */
export interface Exchange {
  readonly id: number;
  readonly method: string;
  /** The absolute target, e.g. http://example.com/a?b. */
  readonly url: URL;
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  /** The client's end-to-end request headers: hop-by-hop removed, Via added. Ready to send upstream. */
  readonly forwardHeaders: OutgoingHttpHeaders;
  readonly startedAt: number;
  /**
   * For path-style requests (http://proxy/example.com/x): rewrites absolute Location headers
   * back into path-style so redirects stay on the proxy. Whoever writes a response applies it.
   */
  readonly rewriteHeaders: ((raw: string[]) => string[]) | null;
  /** Set by the cache to what it did (the Cache-Status parameters), for the log. */
  cacheOutcome?: string;

  // Writing the response. Each head gets `rewriteHeaders`; each body byte is counted for the log.
  /** A whole response: head, then the body unless the method or status has none. */
  respond(status: number, statusMessage: string | undefined, rawHeaders: string[], body?: Buffer | null): void;
  /** The head of a response whose body follows through writeBody/endBody or streamBody. */
  sendHead(status: number, statusMessage: string | undefined, rawHeaders: string[]): void;
  /** False when the client is behind: wait for the response's 'drain'. */
  writeBody(chunk: Buffer): boolean;
  endBody(last?: Buffer | null): void;
  /** Pipes a body after sendHead; resolves once delivered, or once either side broke. */
  streamBody(source: Readable): Promise<void>;
  /** Sends bytes [start, end] of an open file as the body after sendHead (fileBody.ts); closes the handle. */
  streamFile(handle: FileHandle, start: number, end: number): Promise<void>;
  /** Relays an origin response (hop-by-hop removed, Via added, then `extraHeaders`) with backpressure. */
  relay(upstream: IncomingMessage, extraHeaders?: string[]): Promise<void>;
  /** Writes only the head of an origin response (as relay would); returns its status. */
  writeUpstreamHead(upstream: IncomingMessage, extraHeaders?: string[]): number;
}

export type RequestHandler = (exchange: Exchange) => Promise<void>;

export interface UpstreamRequest {
  method: string;
  url: URL;
  /** End-to-end headers to send; Host is derived from url. */
  headers: OutgoingHttpHeaders;
  /** Request body: a stream (piped with backpressure), a buffer, or none. */
  body?: Readable | Buffer | null;
  /** Aborting destroys the upstream request. */
  signal?: AbortSignal;
  /**
   * The client response this request is for: if the client leaves before that response is
   * complete, the upstream request is destroyed (unless `othersWaiting` says other requests
   * still need it). Cheaper than an AbortSignal per request.
   */
  client?: ServerResponse;
  othersWaiting?: () => boolean;
}

/** Reaches origins, directly or through the upstream proxy, over pooled keep-alive connections. */
export interface Origin {
  /**
   * Resolves once response headers arrive; the body is the returned stream. Rejects with a
   * ProxyError: 502 (unresolvable, refused, reset, invalid response) or 504 (timeout).
   */
  fetch(request: UpstreamRequest): Promise<IncomingMessage>;
}

/** An error the proxy answers itself, with a status and a readable message. */
export class ProxyError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly code?: string,
  ) {
    super(message);
    this.name = 'ProxyError';
  }
}

/** Request ids run on across rebinds (a port change makes a new server) and both paths, so log lines never repeat an id. */
let nextExchangeId = 1;
export function newExchangeId(): number {
  return nextExchangeId++;
}
