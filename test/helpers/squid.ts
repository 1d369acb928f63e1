import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { curl, sleep } from './net';
import { portAccepts } from './ports';

/**
 * A real Squid (Debian's package, installed by scripts/install-test-peers.sh) run by the test
 * itself: its own process on a free loopback port, a private configuration and folders, a memory
 * cache. Never the system's daemon.
 */
export interface Squid {
  port: number;
  url: string;
  dir: string;
  /** Squid's access log lines so far (one per request: "TCP_MISS/200", "TCP_MEM_HIT/200", ...). */
  accessLog(): string[];
  stop(): Promise<void>;
}

export const SQUID_BINARY = ['/usr/sbin/squid', '/usr/local/sbin/squid'].find((p) => fs.existsSync(p)) ?? null;

/** Why the Squid tests cannot run here, or null. */
export function squidUnavailable(): string | null {
  if (!SQUID_BINARY) return 'squid is not installed (scripts/install-test-peers.sh installs it; .ci/run calls it)';
  return null;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

const TEAM_DOC = path.resolve(__dirname, '../../../docs/TEAM.md');

/**
 * The configuration docs/TEAM.md gives, as it is written there, with only what a test must
 * change: a loopback port, loopback clients, no disk cache, and folders of its own.
 */
export function squidConfig(port: number, dir: string): string {
  const doc = fs.readFileSync(TEAM_DOC, 'utf8');
  const block = /```squid\n([\s\S]*?)```/.exec(doc);
  if (!block) throw new Error(`${TEAM_DOC} has no \`\`\`squid block`);
  const lines = block[1].split('\n').filter((line) => !/^cache_dir /.test(line)).map((line) => {
    if (/^http_port /.test(line)) return `http_port 127.0.0.1:${port}`;
    if (/^acl team src /.test(line)) return 'acl team src 127.0.0.0/8';
    return line;
  });
  if (!lines.includes(`http_port 127.0.0.1:${port}`) || !lines.includes('acl team src 127.0.0.0/8')) {
    throw new Error(`${TEAM_DOC}: the squid block no longer has the http_port and "acl team src" lines the test replaces`);
  }
  return [
    ...lines,
    ...(process.getuid?.() === 0 ? ['cache_effective_user proxy'] : []),
    `pid_filename ${dir}/squid.pid`,
    `cache_log ${dir}/cache.log`,
    `access_log stdio:${dir}/access.log squid`,
    `coredump_dir ${dir}`,
    'netdb_filename none',
    'pinger_enable off',
    'shutdown_lifetime 0 seconds',
    // Only loopback origins in the tests: no name is ever looked up.
    'dns_nameservers 127.0.0.1',
    '',
  ].join('\n');
}

export async function startSquid(): Promise<Squid> {
  const unavailable = squidUnavailable();
  if (unavailable) throw new Error(unavailable);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cp-squid-'));
  if (process.getuid?.() === 0) {
    // Squid drops to user proxy: its folder must be that user's.
    const proxyUser = spawnSync('id', ['-u', 'proxy'], { encoding: 'utf8' });
    const uid = Number(proxyUser.stdout.trim());
    const gid = Number(spawnSync('id', ['-g', 'proxy'], { encoding: 'utf8' }).stdout.trim());
    if (Number.isInteger(uid) && Number.isInteger(gid)) fs.chownSync(dir, uid, gid);
  }
  const port = await freePort();
  const conf = path.join(dir, 'squid.conf');
  fs.writeFileSync(conf, squidConfig(port, dir));
  const check = spawnSync(SQUID_BINARY!, ['-k', 'parse', '-f', conf], { encoding: 'utf8' });
  if (check.status !== 0) throw new Error(`squid rejected its configuration:\n${check.stderr}`);
  let output = '';
  const child: ChildProcess = spawn(SQUID_BINARY!, ['-N', '-f', conf], { stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout!.on('data', (c: Buffer) => (output += c.toString()));
  child.stderr!.on('data', (c: Buffer) => (output += c.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(timer);
    }
    fs.rmSync(dir, { recursive: true, force: true });
  };
  const deadline = Date.now() + 20_000;
  while (!(await portAccepts(port))) {
    if (child.exitCode !== null || Date.now() > deadline) {
      const log = fs.existsSync(path.join(dir, 'cache.log')) ? fs.readFileSync(path.join(dir, 'cache.log'), 'utf8') : '';
      await stop();
      throw new Error(`squid did not start:\n${output}\n${log}`);
    }
    await sleep(50);
  }
  const url = `http://127.0.0.1:${port}`;
  const accessLog = () => {
    const file = path.join(dir, 'access.log');
    return fs.existsSync(file) ? fs.readFileSync(file, 'utf8').split('\n').filter(Boolean) : [];
  };
  return { port, url, dir, accessLog, stop };
}

/**
 * A fresh Squid answers its first request or two with 502 while its helpers start: ask it for
 * `url` (which must exist) until it answers 200, at most `tries` times.
 */
export async function warmUp(squid: Squid, url: string, tries = 50): Promise<void> {
  for (let i = 0; i < tries; i++) {
    const r = await curl(['-x', squid.url, '-o', '/dev/null', '-w', '%{http_code}', url]);
    if (r.stdout === '200') return;
    await sleep(100);
  }
  throw new Error(`squid never answered 200 for ${url}`);
}
