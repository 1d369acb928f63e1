#!/usr/bin/env node
// HTTPS load through a forward proxy's CONNECT tunnels (wrk cannot speak through one).
//
//   node bench/lib/tlsload.mjs '{"proxyPort":P,"host":"localhost","port":443,"ca":["ca.pem"],
//     "path":"/1k.bin","connections":50,"seconds":10,"mode":"keepalive"}'
//
// mode "keepalive": `connections` tunnels, each CONNECT + one TLS handshake, then GETs one after
// another on it (HTTP/1.1 keep-alive) until the time is up; a tunnel that breaks is opened anew.
// mode "new": `connections` workers, each repeating CONNECT + a full TLS handshake (no session
// resumption: like a new curl or npm process) + one GET + close.
// proxyPort null: TLS straight to the origin (the reference, and this client's ceiling).
// Prints one line `TLSLOADJSON {...}`: responses, connections, errors, non-200 answers, latency
// percentiles and the CPU this client used (to tell when the client itself is the bottleneck).
import { readFileSync } from 'node:fs';
import * as net from 'node:net';
import * as tls from 'node:tls';

const options = JSON.parse(process.argv[2]);
const { proxyPort = null, host, port, path, connections = 50, seconds = 10, mode = 'keepalive' } = options;
// One context for every connection: a `ca` option on each tls.connect would build (and parse) a new one each time.
const secureContext = tls.createSecureContext({ ca: (options.ca ?? []).map((file) => readFileSync(file)) });
const authority = `${host}:${port}`;
const connectRequest = Buffer.from(`CONNECT ${authority} HTTP/1.1\r\nHost: ${authority}\r\n\r\n`, 'latin1');
const close = mode === 'new';
const getRequest = Buffer.from(`GET ${path} HTTP/1.1\r\nHost: ${authority}\r\nAccept: */*\r\nUser-Agent: tlsload\r\n${close ? 'Connection: close\r\n' : ''}\r\n`, 'latin1');
const HEAD_END = Buffer.from('\r\n\r\n');
const CRLF = Buffer.from('\r\n');

let responses = 0;
let opened = 0;
let errors = 0;
let non200 = 0;
let bytes = 0;
const firstErrors = [];
const latencies = [];
let running = true;
const cpuStart = process.cpuUsage();
const started = performance.now();

function noteError(err) {
  errors++;
  if (firstErrors.length < 5) firstErrors.push(String(err?.message ?? err));
}

/** A TCP connection to the proxy, CONNECT answered 200, then TLS over it (or TLS straight to the origin). */
function openTls() {
  return new Promise((resolve, reject) => {
    const secure = (socket) => {
      const s = tls.connect({ socket, host, port, servername: net.isIP(host) ? undefined : host, secureContext, ALPNProtocols: ['http/1.1'] });
      s.once('secureConnect', () => {
        s.off('error', reject);
        resolve(s);
      });
      s.once('error', reject);
    };
    if (proxyPort === null) {
      const raw = net.connect(port, '127.0.0.1');
      raw.once('error', reject);
      raw.once('connect', () => {
        raw.off('error', reject);
        secure(raw);
      });
      return;
    }
    const raw = net.connect(proxyPort, '127.0.0.1');
    raw.setNoDelay(true);
    let head = Buffer.alloc(0);
    raw.once('error', reject);
    raw.once('connect', () => raw.write(connectRequest));
    const onData = (chunk) => {
      head = Buffer.concat([head, chunk]);
      const end = head.indexOf(HEAD_END);
      if (end < 0) return;
      raw.off('data', onData);
      raw.off('error', reject);
      const status = Number(head.subarray(9, 12).toString('latin1'));
      if (status !== 200) {
        raw.destroy();
        return reject(new Error(`CONNECT answered ${head.subarray(0, head.indexOf(CRLF)).toString('latin1')}`));
      }
      raw.pause();
      if (end + 4 < head.length) raw.unshift(head.subarray(end + 4));
      secure(raw);
    };
    raw.on('data', onData);
  });
}

/**
 * Reads HTTP/1.1 responses off a socket: calls `onResponse(status)` once per complete response
 * (Content-Length or chunked bodies).
 */
function responseReader(socket, onResponse) {
  let buf = Buffer.alloc(0);
  let status = 0;
  let bodyLeft = -1; // -1: reading a head; >= 0: bytes of a Content-Length body still to come
  let chunked = false;
  socket.on('data', (chunk) => {
    bytes += chunk.length;
    buf = buf.length ? Buffer.concat([buf, chunk]) : chunk;
    for (;;) {
      if (bodyLeft < 0 && !chunked) {
        const end = buf.indexOf(HEAD_END);
        if (end < 0) return;
        const head = buf.subarray(0, end).toString('latin1');
        buf = buf.subarray(end + 4);
        status = Number(head.slice(9, 12));
        const length = /\r\ncontent-length:\s*(\d+)/i.exec(head);
        if (length) bodyLeft = Number(length[1]);
        else if (/\r\ntransfer-encoding:[^\r]*chunked/i.test(head)) chunked = true;
        else bodyLeft = 0;
      }
      if (chunked) {
        // Chunk by chunk; the last one is "0\r\n\r\n" (no trailers expected here).
        const lineEnd = buf.indexOf(CRLF);
        if (lineEnd < 0) return;
        const size = parseInt(buf.subarray(0, lineEnd).toString('latin1'), 16);
        const need = lineEnd + 2 + size + 2;
        if (buf.length < need) return;
        buf = buf.subarray(need);
        if (size !== 0) continue;
        chunked = false;
      } else {
        if (buf.length < bodyLeft) {
          bodyLeft -= buf.length;
          buf = Buffer.alloc(0);
          return;
        }
        buf = buf.subarray(bodyLeft);
      }
      bodyLeft = -1;
      onResponse(status);
    }
  });
}

async function keepAliveWorker() {
  while (running) {
    let socket;
    try {
      socket = await openTls();
    } catch (err) {
      noteError(err);
      continue;
    }
    opened++;
    await new Promise((resolve) => {
      let sentAt = 0;
      const send = () => {
        sentAt = performance.now();
        socket.write(getRequest);
      };
      responseReader(socket, (status) => {
        responses++;
        latencies.push(performance.now() - sentAt);
        if (status !== 200) non200++;
        if (running) send();
        else socket.destroy();
      });
      socket.on('error', (err) => {
        if (running) noteError(err);
      });
      socket.once('close', resolve);
      send();
    });
  }
}

async function newConnectionWorker() {
  while (running) {
    const t = performance.now();
    let socket;
    try {
      socket = await openTls();
    } catch (err) {
      if (running) noteError(err);
      continue;
    }
    opened++;
    await new Promise((resolve) => {
      let answered = false;
      responseReader(socket, (status) => {
        answered = true;
        responses++;
        latencies.push(performance.now() - t);
        if (status !== 200) non200++;
        socket.destroy();
      });
      socket.on('error', (err) => {
        if (running && !answered) noteError(err);
      });
      socket.once('close', () => {
        if (!answered && running) noteError(new Error('closed before the response'));
        resolve();
      });
      socket.write(getRequest);
    });
  }
}

function percentile(sorted, p) {
  if (!sorted.length) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

const worker = mode === 'new' ? newConnectionWorker : keepAliveWorker;
const timer = setTimeout(() => {
  running = false;
}, seconds * 1000);
let countedAt = 0;
let counted = 0;
// Count what completed within the time: responses that arrive while the last ones drain do not count.
const stopCounting = setTimeout(() => {
  countedAt = performance.now();
  counted = responses;
}, seconds * 1000);
await Promise.race([Promise.all(Array.from({ length: connections }, worker)), new Promise((r) => setTimeout(r, seconds * 1000 + 5000))]);
clearTimeout(timer);
clearTimeout(stopCounting);
const wall = ((countedAt || performance.now()) - started) / 1000;
const cpu = process.cpuUsage(cpuStart);
latencies.sort((a, b) => a - b);
const summary = {
  responses: counted || responses,
  perSecond: (counted || responses) / wall,
  connections: opened,
  connectionsPerSecond: opened / wall,
  errors,
  non200,
  bytes,
  seconds: wall,
  p50Ms: percentile(latencies, 50),
  p99Ms: percentile(latencies, 99),
  clientCpuShare: (cpu.user + cpu.system) / 1e6 / ((performance.now() - started) / 1000),
  firstErrors,
};
process.stdout.write(`TLSLOADJSON ${JSON.stringify(summary)}\n`);
process.exit(0);
