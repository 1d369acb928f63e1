import * as net from 'node:net';
import { meaning, readRequests, type StrictRequest } from './strictHttp';

/** One response as read off a raw socket. */
export interface RawResponse {
  status: number;
  headers: Array<[string, string]>;
  body: Buffer;
}

/**
 * Reads responses off a byte stream. `methods[i]` is the method of the i-th request (HEAD
 * responses carry no body). Returns the complete final responses; interim 1xx are skipped.
 */
export function readResponses(bytes: Buffer, methods: string[], closed: boolean): { responses: RawResponse[]; garbage: boolean } {
  const responses: RawResponse[] = [];
  let at = 0;
  while (at < bytes.length) {
    const headEnd = bytes.indexOf('\r\n\r\n', at);
    if (headEnd < 0) return { responses, garbage: closed };
    const lines = bytes.subarray(at, headEnd).toString('latin1').split('\r\n');
    const m = /^HTTP\/1\.[01] (\d{3})(?: |$)/.exec(lines[0]);
    if (!m) return { responses, garbage: true };
    const status = Number(m[1]);
    const headers = lines.slice(1).map((l): [string, string] => {
      const i = l.indexOf(':');
      return [l.slice(0, i).toLowerCase(), l.slice(i + 1).trim()];
    });
    const get = (n: string) => headers.find(([k]) => k === n)?.[1];
    let next = headEnd + 4;
    let body: Buffer = Buffer.alloc(0);
    const method = methods[responses.length] ?? 'GET';
    if (status === 101) {
      // Switched protocols: what follows is tunnel data, not HTTP.
      responses.push({ status, headers, body: Buffer.alloc(0) });
      return { responses, garbage: false };
    }
    if (status >= 100 && status < 200) {
      at = next;
      continue;
    }
    const declared = get('content-length');
    if (method === 'CONNECT' && status === 200) {
      responses.push({ status, headers, body: Buffer.alloc(0) });
      return { responses, garbage: false };
    }
    if (method === 'HEAD' && closed && declared !== undefined && bytes.length - next === Number(declared) && Number(declared) > 0) {
      // A parse-error answer written before the server knew the method: it carries its body.
      body = bytes.subarray(next);
      next = bytes.length;
    } else if (method === 'HEAD' || status === 204 || status === 304 || (method === 'CONNECT' && status === 200)) {
      // no body
    } else if (get('transfer-encoding')?.toLowerCase().includes('chunked')) {
      const parts: Buffer[] = [];
      for (;;) {
        const eol = bytes.indexOf('\r\n', next);
        if (eol < 0) return { responses, garbage: closed };
        const size = Number.parseInt(bytes.subarray(next, eol).toString('latin1'), 16);
        if (!Number.isFinite(size)) return { responses, garbage: true };
        if (bytes.length < eol + 2 + size + 2) return { responses, garbage: closed };
        parts.push(bytes.subarray(eol + 2, eol + 2 + size));
        next = eol + 2 + size + 2;
        if (size === 0) break;
      }
      body = Buffer.concat(parts);
    } else if (get('content-length') !== undefined) {
      const n = Number(get('content-length'));
      if (bytes.length < next + n) return { responses, garbage: closed };
      body = bytes.subarray(next, next + n);
      next += n;
    } else {
      if (!closed) return { responses, garbage: false };
      body = bytes.subarray(next);
      next = bytes.length;
    }
    responses.push({ status, headers, body });
    at = next;
  }
  return { responses, garbage: false };
}

export interface RawExchange {
  responses: RawResponse[];
  /** The proxy closed (or reset) the connection. */
  closed: boolean;
  /** We gave up waiting. */
  timedOut: boolean;
  garbage: boolean;
}

/**
 * Writes `bytes` on a fresh connection and collects responses until `wanted` final responses
 * arrived (then hangs up), the server closes, or `timeoutMs` passes.
 */
export function rawExchange(port: number, bytes: Buffer, methods: string[], wanted: number, timeoutMs = 3000, host = '127.0.0.1'): Promise<RawExchange> {
  return new Promise((resolve) => {
    const socket = net.connect(port, host);
    const chunks: Buffer[] = [];
    let done = false;
    const finish = (closed: boolean, timedOut: boolean) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.destroy();
      const { responses, garbage } = readResponses(Buffer.concat(chunks), methods, closed);
      resolve({ responses, closed, timedOut, garbage });
    };
    const timer = setTimeout(() => finish(false, true), timeoutMs);
    socket.on('connect', () => socket.write(bytes, () => {}));
    socket.on('data', (c: Buffer) => {
      chunks.push(c);
      if (wanted > 0 && readResponses(Buffer.concat(chunks), methods, false).responses.length >= wanted) finish(false, false);
    });
    socket.on('error', () => finish(true, false));
    socket.on('close', () => finish(true, false));
    if (wanted === 0) {
      // Nothing is owed: give the server a moment to misbehave, then hang up.
      setTimeout(() => finish(false, false), 50);
    }
  });
}

export interface Recorded {
  request: StrictRequest;
  meaning: string | null;
}

/**
 * A raw upstream (or origin) that reads what the proxy sends with the strict reader and records
 * it. Anything the proxy sends that the strict reader rejects is a finding (`malformed`).
 */
export interface Recorder {
  port: number;
  received: Recorded[];
  malformed: string[];
  connections: number;
  close(): Promise<void>;
}

export async function startRecorder(): Promise<Recorder> {
  const received: Recorded[] = [];
  const malformed: string[] = [];
  const sockets = new Set<net.Socket>();
  const rec: Recorder = { port: 0, received, malformed, connections: 0, close: async () => {} };
  const server = net.createServer((socket) => {
    rec.connections++;
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => socket.destroy());
    let buffered = Buffer.alloc(0);
    socket.on('data', (c: Buffer) => {
      buffered = Buffer.concat([buffered, c]);
      const reading = readRequests(buffered);
      for (const request of reading.requests) {
        received.push({ request, meaning: meaning(request, { forwarded: true }) });
        if (request.method === 'CONNECT') {
          socket.end('HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
          return;
        }
        // Cacheable, and naming what was asked: a cached copy under another URL would show.
        const body = `${request.method} ${request.target}`;
        socket.write(`HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nCache-Control: max-age=600\r\nContent-Length: ${Buffer.byteLength(body, 'latin1')}\r\n\r\n${body}`, 'latin1');
      }
      if (reading.tail.kind === 'invalid' || reading.tail.kind === 'unsupported') {
        malformed.push(`${reading.tail.reason}: ${JSON.stringify(buffered.toString('latin1').slice(0, 300))}`);
        socket.destroy();
        return;
      }
      buffered = buffered.subarray(reading.consumed);
      const last = reading.requests[reading.requests.length - 1];
      if (last && reading.tail.kind === 'end' && isLast(last)) socket.end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  rec.port = (server.address() as net.AddressInfo).port;
  rec.close = () =>
    new Promise<void>((r) => {
      for (const s of sockets) s.destroy();
      server.close(() => r());
    });
  return rec;
}

function isLast(r: StrictRequest): boolean {
  const conn = r.headers.filter(([k]) => k.toLowerCase() === 'connection').map(([, v]) => v.toLowerCase()).join(',');
  return conn.includes('close') || conn.includes('upgrade');
}
