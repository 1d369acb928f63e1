// The origin (nginx) and every proxy the benchmark compares, each started on loopback.
import { execFileSync } from 'node:child_process';
import { chmodSync, chownSync, cpSync, mkdirSync, readdirSync, readFileSync, writeFileSync, openSync, writeSync, closeSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import * as http from 'node:http';
import { join, resolve } from 'node:path';
import { CLIENT_CPU, PROXY_CPU, freePort, spawnPinned, stopChild, waitForOutput, waitForPort, sleep } from './proc.mjs';
import { get } from './client.mjs';

const REPO = resolve(import.meta.dirname, '..', '..');

function mkdir(path, mode = 0o755) {
  mkdirSync(path, { recursive: true, mode });
  chmodSync(path, mode);
  return path;
}

function chownTree(path, user) {
  const uid = Number(execFileSync('id', ['-u', user]).toString());
  const gid = Number(execFileSync('id', ['-g', user]).toString());
  const walk = (p) => {
    chownSync(p, uid, gid);
    for (const e of readdirSync(p, { withFileTypes: true })) {
      const child = join(p, e.name);
      if (e.isDirectory()) walk(child);
      else chownSync(child, uid, gid);
    }
  };
  walk(path);
}

function writeRandomFile(path, bytes) {
  const fd = openSync(path, 'w', 0o644);
  const chunk = 1 << 20;
  for (let left = bytes; left > 0; left -= chunk) writeSync(fd, randomBytes(Math.min(chunk, left)));
  closeSync(fd);
}

/**
 * nginx on 127.0.0.1 (one worker, on the client CPU): 1 KiB, 100 KiB and 100 MiB files with
 * Cache-Control: max-age=3600, ETag and Last-Modified; a no-store 1 KiB object; stub_status
 * at /__status to count the requests that reach it. With `tls` ({cert, key} files) the same
 * site is also served over HTTPS on `origin.tlsPort`.
 */
export async function startOrigin(work, { tls = null } = {}) {
  const dir = mkdir(join(work, 'origin'));
  const www = mkdir(join(dir, 'www'));
  writeRandomFile(join(www, '1k.bin'), 1024);
  writeRandomFile(join(www, '100k.bin'), 100 * 1024);
  writeRandomFile(join(www, '100m.bin'), 100 * 1024 * 1024);
  writeRandomFile(join(www, 'nostore.bin'), 1024);
  mkdir(join(dir, 'tmp'));
  const port = await freePort();
  const tlsPort = tls ? await freePort() : null;
  const tlsListen = tls
    ? `listen 127.0.0.1:${tlsPort} ssl backlog=4096;
    ssl_certificate ${tls.cert};
    ssl_certificate_key ${tls.key};
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_session_cache shared:SSL:10m;`
    : '';
  const conf = join(dir, 'nginx.conf');
  writeFileSync(
    conf,
    `worker_processes 1;
daemon off;
master_process on;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
${process.getuid() === 0 ? 'user root;' : ''}
events { worker_connections 4096; multi_accept on; }
http {
  access_log off;
  sendfile on;
  tcp_nopush on;
  tcp_nodelay on;
  keepalive_requests 10000000;
  keepalive_timeout 300s;
  etag on;
  default_type application/octet-stream;
  client_body_temp_path ${dir}/tmp/body;
  proxy_temp_path ${dir}/tmp/proxy;
  fastcgi_temp_path ${dir}/tmp/fastcgi;
  uwsgi_temp_path ${dir}/tmp/uwsgi;
  scgi_temp_path ${dir}/tmp/scgi;
  server {
    listen 127.0.0.1:${port} backlog=4096;
    ${tlsListen}
    root ${www};
    location / { add_header Cache-Control "max-age=3600" always; }
    location = /nostore.bin { add_header Cache-Control "no-store" always; }
    location = /__status { stub_status; }
  }
}
`,
  );
  const child = spawnPinned(CLIENT_CPU, 'nginx', ['-p', dir, '-c', conf, '-e', join(dir, 'error.log')]);
  await waitForPort(port);
  let statusQueries = 0;
  const origin = {
    name: 'nginx origin',
    port,
    tlsPort,
    child,
    base: `http://127.0.0.1:${port}`,
    /** Requests nginx has handled so far, not counting any status request (each counts itself). */
    async count() {
      const text = await new Promise((resolve, reject) => {
        http
          .get({ host: '127.0.0.1', port, path: '/__status', agent: false }, (res) => {
            let body = '';
            res.on('data', (c) => (body += c));
            res.on('end', () => resolve(body));
          })
          .on('error', reject);
      });
      statusQueries++;
      const m = /\n\s*(\d+)\s+(\d+)\s+(\d+)\s*\n/.exec(text);
      if (!m) throw new Error(`unexpected stub_status output: ${text}`);
      return Number(m[3]) - statusQueries;
    },
    stop: () => stopChild(child, 'SIGQUIT'),
  };
  const a = await origin.count();
  await get(`${origin.base}/1k.bin`, null);
  const b = await origin.count();
  if (b - a !== 1) throw new Error(`stub_status counting is off (${a} then ${b} around one request)`);
  return origin;
}

/**
 * Our proxy from its built CLI, pinned to the proxy CPU, as users run it: `options.log` is
 * - 'file' (default): log lines on, stdout and stderr appended to a file, as a service manager
 *   or `>> proxy.log` takes them;
 * - 'pty': log lines on, to a terminal: a pseudo-terminal read by util-linux `script` on the
 *   client CPU, which copies them to a file (what a terminal emulator's reading costs the proxy);
 * - 'pipe': log lines on, to a pipe this runner reads (start-up only: the runner is on the client CPU);
 * - 'quiet': `--quiet`, the extra row.
 */
export async function startOurs(work, name, extraArgs = [], cacheDir = null, options = {}) {
  const dir = cacheDir ?? mkdir(join(work, name));
  const log = options.log ?? 'file';
  const cliArgs = [options.cli ?? join(REPO, 'dist', 'cli.js'), '--port', '0', '--cache-dir', dir, ...(log === 'quiet' ? ['--quiet'] : []), ...extraArgs];
  const args = [...(options.nodeArgs ?? []), ...cliArgs];
  const logFile = log === 'file' || log === 'pty' ? join(work, `${name.replace(/\W+/g, '_')}-${Date.now()}.log`) : null;
  const started = performance.now();
  let child;
  let pid;
  if (logFile) {
    const fd = openSync(logFile, 'a', 0o644);
    if (log === 'pty') {
      const command = ['exec', 'taskset', '-c', PROXY_CPU, process.execPath, ...args].join(' ');
      child = spawnPinned(CLIENT_CPU, 'script', ['-qfec', command, '/dev/null'], { cwd: options.cwd ?? REPO, stdio: ['ignore', fd, fd] });
    } else {
      child = spawnPinned(PROXY_CPU, process.execPath, args, { cwd: options.cwd ?? REPO, stdio: ['ignore', fd, fd] });
    }
    closeSync(fd);
  } else {
    child = spawnPinned(PROXY_CPU, process.execPath, args, { cwd: options.cwd ?? REPO });
  }
  let port;
  if (logFile) {
    const deadline = Date.now() + 120_000;
    for (;;) {
      const m = /listening on http:\/\/127\.0\.0\.1:(\d+)/.exec(readFileSync(logFile, 'latin1').slice(0, 4096));
      if (m) {
        port = Number(m[1]);
        break;
      }
      if (child.exitCode !== null || Date.now() > deadline) throw new Error(`${name} did not start:\n${readFileSync(logFile, 'utf8').slice(-2000)}`);
      await sleep(5);
    }
    pid = log === 'pty' ? childPid(child.pid) : child.pid;
  } else {
    port = Number((await waitForOutput(child, /listening on http:\/\/127\.0\.0\.1:(\d+)/, 120_000))[1]);
    pid = child.pid;
  }
  const listenMs = performance.now() - started;
  const stop = async () => {
    // Under `script` the proxy is signalled itself; script leaves when its child has.
    if (pid !== child.pid) {
      try {
        process.kill(pid, 'SIGTERM');
      } catch {
        /* gone */
      }
    }
    await stopChild(child, 'SIGTERM', 20_000);
  };
  return { name, kind: 'ours', log, logFile, port, child, pid, cacheDir: dir, args: extraArgs, listenMs, stop };
}

/** The one child of a process (script's shell execs into taskset and then node). */
function childPid(parent) {
  const children = readFileSync(`/proc/${parent}/task/${parent}/children`, 'utf8').trim().split(/\s+/).filter(Boolean);
  if (children.length !== 1) throw new Error(`expected one child of ${parent}, found ${children.join(', ') || 'none'}`);
  return Number(children[0]);
}

/** http-proxy (Node) as a pass-through forward proxy with a keep-alive agent. */
export async function startHttpProxy() {
  const port = await freePort();
  const child = spawnPinned(PROXY_CPU, process.execPath, [join(import.meta.dirname, '..', 'peers', 'http-proxy-server.mjs'), String(port)], {
    cwd: join(import.meta.dirname, '..'),
  });
  await waitForOutput(child, /listening/);
  return { name: 'http-proxy', kind: 'passthrough', port, child, pid: child.pid, stop: () => stopChild(child) };
}

/** Squid as a caching forward proxy with a memory cache only (no cache_dir). */
export async function startSquid(work) {
  const dir = mkdir(join(work, 'squid'));
  const port = await freePort();
  const conf = join(dir, 'squid.conf');
  writeFileSync(
    conf,
    `http_port 127.0.0.1:${port}
acl localnet src 127.0.0.0/8
http_access allow localnet
http_access deny all
cache_mem 512 MB
maximum_object_size 200 MB
maximum_object_size_in_memory 200 MB
memory_cache_mode always
refresh_pattern . 0 20% 4320
workers 1
shutdown_lifetime 0 seconds
pinger_enable off
access_log none
cache_store_log none
logfile_rotate 0
cache_log ${dir}/cache.log
pid_filename ${dir}/squid.pid
coredump_dir ${dir}
cache_effective_user proxy
dns_defnames off
`,
  );
  chownTree(dir, 'proxy');
  const child = spawnPinned(PROXY_CPU, 'squid', ['-N', '-f', conf]);
  await waitForPort(port);
  return { name: 'Squid', kind: 'caching', port, child, pid: child.pid, stop: () => stopChild(child, 'SIGTERM', 10_000), logs: () => readLog(join(dir, 'cache.log')) };
}

/**
 * Apache Traffic Server as a caching forward proxy: a private runroot (config, cache, logs in
 * the work folder), one event thread so it uses one core like the others, a 1 GiB disk cache
 * and a RAM cache of 64 MB by default (the same as our default memory tier).
 */
/**
 * Traffic Server as a caching forward proxy. Its directory has one slot per
 * `storage / minAverageObjectSize` bytes (ATS's default average is 8,000 bytes: 134,000 objects
 * in 1 GiB), so a store of many small objects needs both raised.
 */
export async function startTrafficServer(work, { name = 'ats', ramCacheBytes = 64 * 1024 * 1024, storage = '1G', minAverageObjectSize = 0 } = {}) {
  const dir = mkdir(join(work, name));
  const etc = join(dir, 'etc');
  cpSync('/etc/trafficserver', etc, { recursive: true, dereference: true });
  for (const sub of ['cache', 'log', 'run', 'var']) mkdir(join(dir, sub));
  const port = await freePort();
  writeFileSync(
    join(dir, 'runroot.yaml'),
    [
      `prefix: ${dir}`,
      `exec_prefix: /usr`,
      `bindir: /usr/bin`,
      `sbindir: /usr/sbin`,
      `sysconfdir: ${etc}`,
      `datadir: ${dir}/var`,
      `includedir: /usr/include`,
      `libdir: /usr/lib/trafficserver`,
      `libexecdir: /usr/lib/trafficserver/modules`,
      `localstatedir: ${dir}/var`,
      `runtimedir: ${dir}/run`,
      `logdir: ${dir}/log`,
      `cachedir: ${dir}/cache`,
      '',
    ].join('\n'),
  );
  const settings = {
    'proxy.config.http.server_ports': `STRING ${port}:ipv4:ip-in=127.0.0.1`,
    'proxy.config.url_remap.remap_required': 'INT 0',
    'proxy.config.reverse_proxy.enabled': 'INT 0',
    'proxy.config.http.cache.http': 'INT 1',
    'proxy.config.exec_thread.autoconfig': 'INT 0',
    'proxy.config.exec_thread.limit': 'INT 1',
    // Keep taskset's CPU choice: ATS would otherwise bind its threads to cores itself.
    'proxy.config.exec_thread.affinity': 'INT 0',
    'proxy.config.cache.ram_cache.size': `INT ${ramCacheBytes}`,
    'proxy.config.log.logging_enabled': 'INT 0',
    'proxy.config.body_factory.template_sets_dir': `STRING ${etc}/body_factory`,
    'proxy.config.admin.user_id': 'STRING trafficserver',
    ...(minAverageObjectSize ? { 'proxy.config.cache.min_average_object_size': `INT ${minAverageObjectSize}` } : {}),
  };
  const recordsPath = join(etc, 'records.config');
  const kept = readFileSync(recordsPath, 'utf8')
    .split('\n')
    .filter((line) => !Object.keys(settings).some((k) => new RegExp(`^\\s*CONFIG\\s+${k.replace(/\./g, '\\.')}\\s`).test(line)));
  for (const [k, v] of Object.entries(settings)) kept.push(`CONFIG ${k} ${v}`);
  writeFileSync(recordsPath, kept.join('\n') + '\n');
  // Without an existing folder and a size here the cache is silently disabled.
  writeFileSync(join(etc, 'storage.config'), `${dir}/cache ${storage}\n`);
  chownTree(dir, 'trafficserver');
  const child = spawnPinned(PROXY_CPU, 'traffic_server', [`--run-root=${join(dir, 'runroot.yaml')}`]);
  await waitForPort(port, 60_000);
  return { name: 'Traffic Server', kind: 'caching', port, child, pid: child.pid, stop: () => stopChild(child, 'SIGTERM', 10_000), logs: () => readLog(join(dir, 'log', 'diags.log')) };
}

function readLog(path) {
  try {
    return readFileSync(path, 'utf8').slice(-3000);
  } catch {
    return '';
  }
}

/**
 * Requests `path` through a proxy until a repeat request is answered without reaching the
 * origin (a fresh peer may answer 502 or not cache its first requests). Returns true once a hit
 * is confirmed, false if the proxy never serves it without the origin.
 */
export async function warmUntilHit(system, origin, path, attempts = 20) {
  for (let i = 0; i < attempts; i++) {
    const first = await get(origin.base + path, system.port).catch((e) => ({ status: 0, error: e }));
    if (first.status !== 200) {
      await sleep(250);
      continue;
    }
    // Give a store that finishes after the response a moment to land.
    await sleep(i < 2 ? 50 : 300);
    const before = await origin.count();
    const again = await get(origin.base + path, system.port);
    const after = await origin.count();
    if (again.status === 200 && after === before) return true;
  }
  return false;
}
