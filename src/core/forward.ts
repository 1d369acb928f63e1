import type { IncomingMessage, InformationEvent, ServerResponse } from 'node:http';
import { ProxyError, type Exchange, type Origin, type RequestHandler } from './exchange';
import { forwardResponseHeaders, requestHasBody } from './headers';

/** Our name in Via headers (RFC 9110 §7.6.3 received-by pseudonym). */
export const VIA_NAME = 'caching-proxy';

/**
 * What a handler writes is counted on the response itself so the log can say how much was
 * sent. A symbol-keyed property, not a WeakMap: this runs for every chunk of every response,
 * and a WeakMap lookup costs a hash of the object each time.
 */
const BODY_BYTES = Symbol('caching-proxy.bodyBytes');
type CountedResponse = ServerResponse & { [BODY_BYTES]?: number };

export function countBytes(res: ServerResponse, n: number): void {
  (res as CountedResponse)[BODY_BYTES] = ((res as CountedResponse)[BODY_BYTES] ?? 0) + n;
}

/** Body bytes counted so far for a response. */
export function bodyBytes(res: ServerResponse): number {
  return (res as CountedResponse)[BODY_BYTES] ?? 0;
}

/**
 * Passes an interim (1xx) origin response on to the client as it arrives (RFC 9110 §15.2),
 * before the final one; nothing stores it. Not to HTTP/1.0 clients, which cannot read one.
 */
export function forwardInterim(res: ServerResponse, info: InformationEvent): void {
  if (res.headersSent || res.destroyed || res.req?.httpVersion === '1.0') return;
  if (info.statusCode === 100) res.writeContinue();
  else if (info.statusCode === 102) res.writeProcessing();
  else if (info.statusCode === 103) {
    const hints: Record<string, string | string[]> = {};
    const fields = forwardResponseHeaders(info.rawHeaders, info.httpVersion, VIA_NAME);
    for (let i = 0; i < fields.length; i += 2) {
      const name = fields[i].toLowerCase();
      const prev = hints[name];
      hints[name] = prev === undefined ? fields[i + 1] : ([] as string[]).concat(prev, fields[i + 1]);
    }
    try {
      res.writeEarlyHints(hints);
    } catch {
      // A Link value Node will not write: the hints are only hints.
    }
  }
}

/** Responses to these carry no body whatever their headers say. */
export function responseHasNoBody(method: string, status: number): boolean {
  return method === 'HEAD' || status === 204 || status === 304 || (status >= 100 && status < 200);
}

/**
 * Writes an upstream response to the client and streams its body with backpressure: a slow
 * client pauses the origin read. Resolves when the body is delivered; rejects if either side breaks.
 */
export function relayResponse(ex: Exchange, upstream: IncomingMessage, extraHeaders: string[] = []): Promise<void> {
  const { res } = ex;
  const status = writeUpstreamHead(ex, upstream, extraHeaders);
  if (responseHasNoBody(ex.method, status)) {
    upstream.resume();
    res.end();
    return finished(res);
  }
  return pipeBody(upstream, res);
}

/**
 * Writes an upstream response's status and headers to the client: hop-by-hop removed, Via
 * added, path-style redirects rewritten, then `extraHeaders`. Returns the status written.
 */
export function writeUpstreamHead(ex: Exchange, upstream: IncomingMessage, extraHeaders: string[] = []): number {
  let raw = forwardResponseHeaders(upstream.rawHeaders, upstream.httpVersion, VIA_NAME);
  if (ex.rewriteHeaders) raw = ex.rewriteHeaders(raw);
  if (extraHeaders.length) raw.push(...extraHeaders);
  const status = upstream.statusCode ?? 502;
  ex.res.writeHead(status, upstream.statusMessage, raw);
  return status;
}

/** Pipes a body into the client response; destroys both ends on failure so nothing leaks. */
export function pipeBody(source: IncomingMessage, res: ServerResponse): Promise<void> {
  return new Promise((resolve, reject) => {
    let done = false;
    const fail = (err: Error) => {
      if (done) return;
      done = true;
      source.destroy();
      // Headers are out: the only honest signal left is a broken connection.
      res.destroy(err);
      reject(err);
    };
    if (res.destroyed) {
      // The client left before the body could start (e.g. while coalesced requests kept the
      // origin request alive): its 'close' has already fired and would never be seen below.
      fail(new ProxyError(499, 'the client went away before the body', 'ABORTED'));
      return;
    }
    source.on('data', (chunk: Buffer) => countBytes(res, chunk.length));
    source.once('aborted', () => fail(new ProxyError(502, 'the origin closed the connection mid-body', 'ECONNRESET')));
    source.once('error', fail);
    res.once('close', () => {
      if (done) return;
      if (!res.writableFinished) return fail(new ProxyError(499, 'the client went away mid-body', 'ABORTED'));
      // Everything reached the socket, but it broke before 'finish' (Node skips 'finish' on a
      // socket error), so the end() callback below never runs: settle here or waiters hang.
      done = true;
      resolve();
    });
    source.once('end', () => {
      if (source.complete === false) return fail(new ProxyError(502, 'the origin closed the connection mid-body', 'ECONNRESET'));
      res.end(() => {
        done = true;
        resolve();
      });
    });
    source.pipe(res, { end: false });
  });
}

function finished(res: ServerResponse): Promise<void> {
  return new Promise((resolve) => {
    if (res.writableFinished || res.destroyed) resolve();
    else res.once('close', () => resolve());
  });
}

/** Sends the client's request on to its origin as it came (body streamed); aborted if the client leaves. */
export function fetchAsIs(origin: Origin, ex: Exchange): Promise<IncomingMessage> {
  return origin.fetch({
    method: ex.method,
    url: ex.url,
    headers: ex.forwardHeaders,
    body: requestHasBody(ex.req.headers) ? ex.req : null,
    client: ex.res,
  });
}

/** The plain forwarding handler: every method, bodies streamed both ways. */
export function createPassThrough(origin: Origin): RequestHandler {
  return async (ex) => relayResponse(ex, await fetchAsIs(origin, ex));
}
