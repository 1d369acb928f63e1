// Clients the benchmark drives: one-off requests (Node http), wrk for load, curl for big transfers.
import * as http from 'node:http';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CLIENT_CPU, run } from './proc.mjs';

/**
 * One GET for `url`, straight to the origin (proxyPort null) or through a forward proxy
 * (absolute-form target). Resolves with status, headers and body length.
 */
export function get(url, proxyPort, agent = false, timeoutMs = 60_000) {
  const u = new URL(url);
  const options = proxyPort
    ? { host: '127.0.0.1', port: proxyPort, path: u.href, headers: { host: u.host }, agent }
    : { host: u.hostname, port: u.port, path: u.pathname + u.search, agent };
  return new Promise((resolve, reject) => {
    const req = http.get(options, (res) => {
      let bytes = 0;
      res.on('data', (c) => (bytes += c.length));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, bytes }));
      res.on('error', reject);
    });
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`GET ${url} timed out`)));
    req.on('error', reject);
  });
}

/**
 * Stores `count` distinct URLs in a proxy's cache (`base + i`), `concurrency` requests at a
 * time over keep-alive connections. Throws on any non-200 answer.
 */
export async function populate(proxyPort, base, count, concurrency = 32) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency });
  let next = 0;
  const worker = async () => {
    while (next < count) {
      const i = next++;
      const r = await get(base + i, proxyPort, agent);
      if (r.status !== 200) throw new Error(`populating ${base}${i}: status ${r.status}`);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  agent.destroy();
}

/**
 * The wrk Lua script for one target. Through a proxy, the request target is absolute-form and
 * Host names the origin. `spread` > 0 cycles over `path + i` for i in 0..spread-1.
 */
function wrkScript(dir, name, { target, host, spread, threads }) {
  const file = join(dir, `${name}.lua`);
  const lines = [`wrk.method = "GET"`, `wrk.headers["Host"] = "${host}"`];
  if (spread) {
    lines.push(
      // Each thread walks the entries from its own start, evenly spaced, so no entry is asked for
      // twice in a row. (A `local offset` here once shadowed the global that thread:set sets:
      // every thread started at 0, and each entry was asked for once per thread, the second
      // time from memory.) `first` is that global, set in each thread's state before init.
      `local n = 0`,
      `local threads = 0`,
      `function setup(thread) thread:set("first", math.floor(threads * ${spread} / ${threads})); threads = threads + 1 end`,
      `function init(args) n = first end`,
      `function request() n = (n + 1) % ${spread}; return wrk.format(nil, "${target}" .. n) end`,
    );
  } else {
    lines.push(`wrk.path = "${target}"`);
  }
  lines.push(
    `function done(summary, latency, requests)`,
    `  local e = summary.errors`,
    `  io.write(string.format('WRKJSON {"requests":%d,"duration_us":%d,"bytes":%d,"connect_errors":%d,"read_errors":%d,"write_errors":%d,"status_errors":%d,"timeouts":%d,"p50_us":%d,"p99_us":%d,"mean_us":%.1f,"max_us":%d}\\n',`,
    `    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status, e.timeout,`,
    `    latency:percentile(50), latency:percentile(99), latency.mean, latency.max))`,
    `end`,
  );
  writeFileSync(file, lines.join('\n') + '\n');
  return file;
}

/**
 * Runs wrk pinned to the client CPU. `proxyPort` null means straight to the origin.
 * Resolves with req/s, p99 latency (ms) and error counts.
 */
export async function wrk({ dir, name, originPort, path, proxyPort, threads = 2, connections = 50, seconds = 10, spread = 0 }) {
  const host = `127.0.0.1:${originPort}`;
  const target = proxyPort ? `http://${host}${path}` : path;
  const script = wrkScript(dir, name, { target, host, spread, threads });
  const port = proxyPort ?? originPort;
  const out = await run('taskset', ['-c', CLIENT_CPU, 'wrk', `-t${threads}`, `-c${connections}`, `-d${seconds}s`, '--timeout', '10s', '-s', script, `http://127.0.0.1:${port}/`]);
  const m = /WRKJSON (\{.*\})/.exec(out);
  if (!m) throw new Error(`wrk printed no summary:\n${out}`);
  const r = JSON.parse(m[1]);
  const errors = r.connect_errors + r.read_errors + r.write_errors + r.status_errors + r.timeouts;
  return {
    reqPerSec: r.requests / (r.duration_us / 1e6),
    p50Ms: r.p50_us / 1000,
    p99Ms: r.p99_us / 1000,
    requests: r.requests,
    errors,
    raw: r,
  };
}

/** One transfer with curl (pinned to the client CPU), body discarded: MB/s (10^6 bytes) and bytes. */
export async function curlTransfer(url, proxyPort) {
  const args = ['-c', CLIENT_CPU, 'curl', '-s', '-o', '/dev/null', '-w', '%{http_code} %{size_download} %{time_total}', '--noproxy', ''];
  if (proxyPort) args.push('-x', `http://127.0.0.1:${proxyPort}`);
  args.push(url);
  const out = await run('taskset', args, { env: { ...process.env, http_proxy: '', HTTP_PROXY: '' } });
  const [status, size, seconds] = out.trim().split(' ');
  return { status: Number(status), bytes: Number(size), seconds: Number(seconds), mbPerSec: Number(size) / Number(seconds) / 1e6 };
}

/** The browser-like client (browser.mjs) in its own process, pinned to the client CPU. */
export async function browserLoad(options) {
  const out = await run('taskset', ['-c', CLIENT_CPU, process.execPath, join(import.meta.dirname, 'browser.mjs'), JSON.stringify(options)]);
  const m = /BROWSERJSON (\{.*\})/.exec(out);
  if (!m) throw new Error(`the browser client printed no summary:\n${out}`);
  return JSON.parse(m[1]);
}
