// A browser-like client: `connections` kept-alive connections at once, each sending its first
// `misses` requests for URLs never seen before (so the proxy must fetch them) and then hits on
// a small set of stored assets, `perConnection` requests in all, one at a time; then it closes
// and a new connection takes its place, as a browser's do from page to page.
//
//   node bench/lib/browser.mjs '{"port":P,"host":"127.0.0.1:O","seconds":10,...}'
// prints one line: BROWSERJSON {...}
import * as net from 'node:net';

const o = JSON.parse(process.argv[2]);
const { port, host, seconds, connections = 48, misses = 1, perConnection = 20, hitPaths, missPrefix } = o;
const deadline = performance.now() + seconds * 1000;
const hitRequests = hitPaths.map((p) => request(p));
let uniq = 0;
const counts = { requests: 0, misses: 0, hits: 0, errors: 0, connections: 0, non200: 0 };
const latencies = [];

function request(path) {
  return Buffer.from(`GET http://${host}${path} HTTP/1.1\r\nHost: ${host}\r\nUser-Agent: bench-browser\r\nAccept: */*\r\nAccept-Encoding: gzip, deflate\r\n\r\n`, 'latin1');
}

/** One connection's life: resolves when it has sent its requests (or failed). */
function oneConnection() {
  return new Promise((resolve) => {
    counts.connections++;
    const socket = net.connect(port, '127.0.0.1');
    socket.setNoDelay(true);
    let sent = 0;
    let buffered = null;
    let started = 0;
    const next = () => {
      if (sent >= perConnection || performance.now() >= deadline) {
        socket.end();
        return resolve();
      }
      const miss = sent < misses;
      started = performance.now();
      socket.write(miss ? request(`${missPrefix}${uniq++}`) : hitRequests[(sent + counts.connections) % hitRequests.length]);
      if (miss) counts.misses++;
      else counts.hits++;
      sent++;
    };
    socket.on('connect', next);
    socket.on('data', (chunk) => {
      buffered = buffered === null ? chunk : Buffer.concat([buffered, chunk]);
      const headEnd = buffered.indexOf('\r\n\r\n');
      if (headEnd < 0) return;
      const head = buffered.toString('latin1', 0, headEnd);
      const m = /\r\ncontent-length:\s*(\d+)/i.exec(head);
      const total = headEnd + 4 + (m ? Number(m[1]) : 0);
      if (buffered.length < total) return;
      if (!head.startsWith('HTTP/1.1 200')) counts.non200++;
      buffered = buffered.length > total ? buffered.subarray(total) : null;
      counts.requests++;
      if ((counts.requests & 15) === 0) latencies.push(performance.now() - started);
      next();
    });
    socket.on('error', () => {
      counts.errors++;
      resolve();
    });
    socket.on('close', () => resolve());
  });
}

const t0 = performance.now();
await Promise.all(
  Array.from({ length: connections }, async () => {
    while (performance.now() < deadline) await oneConnection();
  }),
);
const elapsed = (performance.now() - t0) / 1000;
latencies.sort((a, b) => a - b);
const p99Ms = latencies.length ? latencies[Math.min(latencies.length - 1, Math.floor(latencies.length * 0.99))] : NaN;
process.stdout.write(`BROWSERJSON ${JSON.stringify({ ...counts, seconds: elapsed, reqPerSec: counts.requests / elapsed, p99Ms })}\n`);
