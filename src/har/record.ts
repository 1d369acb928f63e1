/**
 * The recording tap: a RequestHandler wrapped around the real one that copies what passes
 * (request head and body, response head and body) into a HAR entry when the response closes.
 * It is installed only while recording, so it costs nothing otherwise; while it is, the
 * server's quick path is off and every request takes the ordinary path through it.
 */
import { createHash } from 'node:crypto';
import { isUtf8 } from 'node:buffer';
import { STATUS_CODES, type OutgoingHttpHeaders, type ServerResponse } from 'node:http';
import type { Exchange, RequestHandler } from '../core/exchange';
import { requestHasBody } from '../core/headers';
import { flatHeaders, harHeaders, headerIn, queryStringOf, responseContent, type CachingProxyFields, type HarEntry } from './har';
import type { HarRecorder } from './recorder';

export interface RecordOptions {
  /** Bodies kept per exchange (each way), in bytes. */
  maxBodyBytes: number;
  redact: boolean;
}

/** Bytes seen on one side of an exchange, kept up to a limit. */
class BodyCopy {
  readonly chunks: Buffer[] = [];
  kept = 0;
  size = 0;
  constructor(private readonly limit: number) {}

  add(chunk: Buffer): void {
    this.size += chunk.length;
    if (this.kept + chunk.length <= this.limit) {
      // A copy: a writer may reuse its buffer once the write is done (fileBody.ts's slabs).
      this.chunks.push(Buffer.from(chunk));
      this.kept += chunk.length;
    }
  }

  get truncated(): boolean {
    return this.kept < this.size;
  }

  body(): Buffer {
    return Buffer.concat(this.chunks, this.kept);
  }
}

export function recordingHandler(inner: RequestHandler, recorder: HarRecorder, options: RecordOptions): RequestHandler {
  return (ex) => {
    tap(ex, recorder, options);
    return inner(ex);
  };
}

function toBuffer(chunk: unknown, encoding: unknown): Buffer | null {
  if (typeof chunk === 'string') return Buffer.from(chunk, typeof encoding === 'string' ? (encoding as BufferEncoding) : 'utf8');
  if (chunk instanceof Uint8Array) return Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
  return null;
}

function tap(ex: Exchange, recorder: HarRecorder, options: RecordOptions): void {
  const { req, res } = ex;
  const startedWall = Date.now() - (performance.now() - ex.startedAt);
  let requestBody: BodyCopy | null = null;
  let requestHash: ReturnType<typeof createHash> | null = null;
  let requestComplete = false;
  if (requestHasBody(req.headers)) {
    requestBody = new BodyCopy(options.maxBodyBytes);
    requestHash = createHash('sha256');
    // Paused first, so listening does not start the flow: the handler still decides when (and whether) the body is read.
    req.pause();
    req.on('data', (chunk: Buffer) => {
      requestBody!.add(chunk);
      requestHash!.update(chunk);
    });
    req.once('end', () => (requestComplete = true));
  }

  const responseBody = new BodyCopy(options.maxBodyBytes);
  let status = 0;
  let statusText: string | undefined;
  let headersGiven: unknown;
  let headAt = 0;
  const writeHead = res.writeHead;
  const write = res.write;
  const end = res.end;
  res.writeHead = function (this: ServerResponse, code: number, ...rest: unknown[]) {
    status = code;
    if (typeof rest[0] === 'string' || rest[0] === undefined) {
      statusText = rest[0] as string | undefined;
      headersGiven = rest[1];
    } else {
      headersGiven = rest[0];
    }
    headAt = performance.now();
    return (writeHead as (...args: unknown[]) => ServerResponse).apply(this, [code, ...rest]);
  } as typeof res.writeHead;
  res.write = function (this: ServerResponse, chunk: unknown, ...rest: unknown[]) {
    const b = toBuffer(chunk, rest[0]);
    if (b) responseBody.add(b);
    return (write as (...args: unknown[]) => boolean).apply(this, [chunk, ...rest]);
  } as typeof res.write;
  res.end = function (this: ServerResponse, chunk?: unknown, ...rest: unknown[]) {
    const b = typeof chunk === 'function' ? null : toBuffer(chunk, rest[0]);
    if (b) responseBody.add(b);
    return (end as (...args: unknown[]) => ServerResponse).apply(this, [chunk, ...rest]);
  } as typeof res.end;

  res.once('close', () => {
    const endedAt = performance.now();
    const raw = responseHeaders(res, headersGiven);
    const fields: CachingProxyFields = {};
    const redacted = new Set<string>();
    if (ex.cacheOutcome) fields.cacheStatus = ex.cacheOutcome;
    if (!res.writableFinished) fields.aborted = true;
    const requestHeaders = harHeaders(req.rawHeaders, options.redact, redacted);
    const responseHeaderList = harHeaders(raw, options.redact, redacted);
    const mimeType = headerIn(responseHeaderList, 'content-type') ?? '';
    let content: HarEntry['response']['content'];
    if (responseBody.truncated) {
      fields.responseBodyTruncated = true;
      content = { size: responseBody.size, mimeType, comment: `body of ${responseBody.size} bytes not recorded: over the recording limit of ${options.maxBodyBytes} bytes` };
    } else {
      const made = responseContent(responseBody.body(), mimeType, headerIn(responseHeaderList, 'content-encoding'));
      content = made.content;
      if (made.encodedBody !== undefined) fields.encodedBody = made.encodedBody;
    }
    let postData: HarEntry['request']['postData'];
    if (requestBody) {
      const body = requestBody.body();
      const utf8 = isUtf8(body);
      postData = { mimeType: headerIn(requestHeaders, 'content-type') ?? '', text: utf8 ? body.toString('utf8') : '' };
      if (!utf8) fields.requestBodyBase64 = body.toString('base64');
      if (requestComplete) fields.requestBodySha256 = requestHash!.digest('hex');
      if (requestBody.truncated || !requestComplete) fields.requestBodyTruncated = true;
    }
    if (redacted.size) fields.redacted = [...redacted];
    const wait = headAt ? headAt - ex.startedAt : endedAt - ex.startedAt;
    const receive = headAt ? endedAt - headAt : 0;
    recorder.append({
      startedDateTime: new Date(startedWall).toISOString(),
      time: wait + receive,
      request: {
        method: ex.method,
        url: ex.url.href,
        httpVersion: `HTTP/${req.httpVersion}`,
        cookies: [],
        headers: requestHeaders,
        queryString: queryStringOf(ex.url.href),
        ...(postData ? { postData } : {}),
        headersSize: -1,
        bodySize: requestBody?.size ?? 0,
      },
      response: {
        status: status || res.statusCode,
        statusText: statusText ?? res.statusMessage ?? STATUS_CODES[status] ?? '',
        httpVersion: 'HTTP/1.1',
        cookies: [],
        headers: responseHeaderList,
        content,
        redirectURL: headerIn(responseHeaderList, 'location') ?? '',
        headersSize: -1,
        bodySize: responseBody.size,
      },
      cache: {},
      timings: { send: 0, wait, receive },
      _cachingProxy: fields,
    });
  });
}

/** The response's header fields as sent: those given to writeHead, else those set on the response. */
function responseHeaders(res: ServerResponse, given: unknown): string[] {
  if (Array.isArray(given)) {
    if (given.length > 0 && Array.isArray(given[0])) return (given as [string, string][]).flat();
    return (given as unknown[]).map(String);
  }
  const set = res.getHeaders() as OutgoingHttpHeaders;
  const merged = given && typeof given === 'object' ? { ...set, ...(given as OutgoingHttpHeaders) } : set;
  return flatHeaders(merged as Record<string, string | string[] | number | undefined>);
}
