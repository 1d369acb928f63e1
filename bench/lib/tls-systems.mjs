// The HTTPS side of the benchmark: the origin's throwaway CA, the intercepting proxies (ours,
// mitmproxy, mockttp), each pinned to the proxy CPU, and the CONNECT + TLS load client.
import { execFileSync } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { CLIENT_CPU, PROXY_CPU, freePort, run, sleep, spawnPinned, stopChild, waitForOutput, waitForPort } from './proc.mjs';

const REPO = resolve(import.meta.dirname, '..', '..');
/** The name the clients ask the proxies for: /etc/hosts maps it to 127.0.0.1 only, and a name (unlike an address) is sent as SNI. */
export const TLS_HOST = 'localhost';

/**
 * A CA of the benchmark's own and a leaf for localhost / 127.0.0.1 signed by it (ECDSA P-256,
 * two days), made with openssl for the nginx origin. Returns the file paths.
 */
export function makeOriginCertificate(work) {
  const dir = join(work, 'origin-tls');
  mkdirSync(dir, { recursive: true });
  const f = (name) => join(dir, name);
  const openssl = (...args) => execFileSync('openssl', args, { stdio: ['ignore', 'ignore', 'pipe'] });
  openssl('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', f('ca-key.pem'), '-out', f('ca.pem'), '-days', '2', '-subj', '/CN=caching-proxy bench origin CA', '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign');
  openssl('req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', f('key.pem'), '-out', f('leaf.csr'), '-subj', `/CN=${TLS_HOST}`);
  writeFileSync(f('leaf.ext'), `subjectAltName=DNS:${TLS_HOST},IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n`);
  openssl('x509', '-req', '-in', f('leaf.csr'), '-CA', f('ca.pem'), '-CAkey', f('ca-key.pem'), '-CAcreateserial', '-out', f('cert.pem'), '-days', '2', '-extfile', f('leaf.ext'));
  return { ca: f('ca.pem'), cert: f('cert.pem'), key: f('key.pem') };
}

/**
 * Our proxy intercepting TLS_HOST, in its default configuration otherwise: log lines on
 * (--log-level info), stdout and stderr appended to a file as a service manager or `>> log`
 * takes them. Its CA is made in its own folder at start.
 */
export async function startOursIntercepting(work, originCa, nodeArgs = []) {
  const dir = join(work, 'ours-https');
  mkdirSync(dir, { recursive: true });
  const caDir = join(dir, 'ca');
  const logFile = join(dir, 'proxy.log');
  const args = [...nodeArgs, join(REPO, 'dist', 'cli.js'), '--port', '0', '--cache-dir', join(dir, 'cache'), '--intercept', TLS_HOST, '--ca-dir', caDir, '--upstream-ca', originCa];
  const fd = openSync(logFile, 'a', 0o644);
  const child = spawnPinned(PROXY_CPU, process.execPath, args, { cwd: REPO, stdio: ['ignore', fd, fd] });
  closeSync(fd);
  let port = null;
  for (const deadline = Date.now() + 60_000; port === null; await sleep(10)) {
    const m = /listening on http:\/\/127\.0\.0\.1:(\d+)/.exec(readFileSync(logFile, 'latin1').slice(0, 8192));
    if (m) port = Number(m[1]);
    else if (child.exitCode !== null || Date.now() > deadline) throw new Error(`our proxy did not start:\n${readFileSync(logFile, 'utf8').slice(-2000)}`);
  }
  return { name: 'ours', kind: 'ours', port, pid: child.pid, child, ca: join(caDir, 'ca.pem'), logFile, stop: () => stopChild(child, 'SIGTERM', 20_000) };
}

/** mitmdump intercepting TLS_HOST only, its CA in a fresh confdir, verifying the origin against its CA. */
export async function startMitmproxy(work, originCa) {
  const confdir = join(work, 'mitmproxy');
  mkdirSync(confdir, { recursive: true });
  const port = await freePort();
  const args = ['--listen-host', '127.0.0.1', '--listen-port', String(port), '--set', `confdir=${confdir}`, '--allow-hosts', `^${TLS_HOST}(:|$)`, '--set', `ssl_verify_upstream_trusted_ca=${originCa}`, '--set', 'flow_detail=0', '--set', 'termlog_verbosity=warn', '--set', 'stream_large_bodies=1m'];
  const child = spawnPinned(PROXY_CPU, 'mitmdump', args);
  await waitForPort(port, 60_000);
  const ca = join(confdir, 'mitmproxy-ca-cert.pem');
  if (!existsSync(ca)) throw new Error(`mitmproxy made no CA in ${confdir}:\n${child.output}`);
  return { name: 'mitmproxy', kind: 'intercepting', port, pid: child.pid, child, ca, stop: () => stopChild(child, 'SIGTERM', 10_000) };
}

/** mockttp passing every request through to the origin (trusted through NODE_EXTRA_CA_CERTS), with a CA of its own (bench/peers/mockttp-proxy.mjs). */
export async function startMockttp(work, originCa, nodeArgs = []) {
  const caDir = join(work, 'mockttp');
  const port = await freePort();
  const child = spawnPinned(PROXY_CPU, process.execPath, [...nodeArgs, join(import.meta.dirname, '..', 'peers', 'mockttp-proxy.mjs'), String(port), caDir], {
    cwd: join(import.meta.dirname, '..'),
    env: { ...process.env, NODE_EXTRA_CA_CERTS: originCa },
  });
  await waitForOutput(child, /mockttp listening/, 60_000);
  return { name: 'mockttp', kind: 'intercepting', port, pid: child.pid, child, ca: join(caDir, 'ca.pem'), stop: () => stopChild(child, 'SIGTERM', 10_000) };
}

/**
 * The load client (tlsload.mjs) in its own process on the client CPU. `system` null: TLS
 * straight to the origin, trusting the origin's CA; otherwise through its CONNECT, trusting its CA.
 */
export async function tlsLoad(system, origin, originCa, options) {
  const spec = { proxyPort: system?.port ?? null, host: TLS_HOST, port: origin.tlsPort, ca: [system?.ca ?? originCa], ...options };
  const out = await run('taskset', ['-c', CLIENT_CPU, process.execPath, join(import.meta.dirname, 'tlsload.mjs'), JSON.stringify(spec)]);
  const m = /TLSLOADJSON (\{.*\})/.exec(out);
  if (!m) throw new Error(`the TLS load client printed no summary:\n${out}`);
  return JSON.parse(m[1]);
}
