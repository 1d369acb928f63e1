#!/usr/bin/env node
// Syscalls per request of ours and Traffic Server on one wrk load (perf stat on the syscall
// tracepoints of the proxy process), and an strace sample of writes and their sizes.
//   node bench/syscalls.mjs [path[,path]] [seconds] [cli]
//   MODE=stat (default; EVENTS=tracepoints to count instead) | plain (user/sys µs per request, interleaved, ROUNDS) | record (perf record -g, PERF_DIR)
//   SYSTEMS=ours,ats
import { spawn } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, readFileSync } from 'node:fs';
import * as os from 'node:os';
import { join, resolve } from 'node:path';
import { cpuSeconds, killAllChildren, pinRunnerToClientCpu, sleep } from './lib/proc.mjs';
import { wrk } from './lib/client.mjs';
import { startOrigin, startOurs, startTrafficServer, warmUntilHit } from './lib/systems.mjs';

pinRunnerToClientCpu();
const [path = '/100k.bin', seconds = '8', cli] = process.argv.slice(2);
const only = (process.env.SYSTEMS ?? 'ours,ats').split(',');
const work = mkdtempSync(join(os.tmpdir(), 'caching-proxy-sys-'));
chmodSync(work, 0o755);
function collect(cmd, args) {
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (c) => (out += c));
  child.stderr.on('data', (c) => (out += c));
  return { child, done: new Promise((r) => child.on('exit', () => r(out))) };
}
try {
  const origin = await startOrigin(work);
  const systems = [];
  if (only.includes('ours')) systems.push(await startOurs(work, 'ours', [], null, cli ? { cli: resolve(cli) } : {}));
  if (only.includes('ats')) systems.push(await startTrafficServer(work));
  for (const s of systems) {
    for (const p of path.split(',')) {
      if (!(await warmUntilHit(s, origin, p))) console.log(`${s.name}: not cached`);
      await wrk({ dir: work, name: `warm`, originPort: origin.port, path: p, proxyPort: s.port, seconds: 3 });
    }
  }
  const mode = process.env.MODE ?? 'stat';
  const ut = (pid) => {
    const f = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const v = f.slice(f.lastIndexOf(')') + 2).split(' ');
    return [Number(v[11]) / 100, Number(v[12]) / 100];
  };
  if (mode === 'plain') {
    const paths = path.split(',');
    for (let i = 0; i < Number(process.env.ROUNDS ?? 3); i++) {
      for (const p of paths) for (const s of systems) {
        const [u0, s0] = ut(s.pid);
        const r = await wrk({ dir: work, name: `run`, originPort: origin.port, path: p, proxyPort: s.port, seconds: Number(seconds) });
        const [u1, s1] = ut(s.pid);
        const k = 1e6 / r.requests;
        console.log(`${p} ${s.name.padEnd(15)} ${String(Math.round(r.reqPerSec)).padStart(6)} req/s, ${(((u1 - u0) + (s1 - s0)) * k).toFixed(1)} µs/req (user ${((u1 - u0) * k).toFixed(1)}, sys ${((s1 - s0) * k).toFixed(1)}), load ${os.loadavg()[0].toFixed(2)}`);
      }
    }
  }
  for (const s of systems) {
    if (mode === 'record') {
      const data = join(process.env.PERF_DIR ?? os.tmpdir(), `perf-${s.kind}-${process.env.TAG ?? 'x'}.data`);
      const perf = collect('perf', ['record', '-F', '4000', '-g', '-o', data, '-p', String(s.pid), '--', 'sleep', String(Number(seconds) - 1)]);
      const before = cpuSeconds(s.pid);
      const r = await wrk({ dir: work, name: `run`, originPort: origin.port, path, proxyPort: s.port, seconds: Number(seconds) });
      const cpu = cpuSeconds(s.pid) - before;
      await perf.done;
      console.log(`== ${s.name}: ${Math.round(r.reqPerSec)} req/s, ${((cpu * 1e6) / r.requests).toFixed(1)} µs/req, load ${os.loadavg()[0].toFixed(2)} -> ${data}`);
      continue;
    }
    if (mode === 'plain') continue;
    const events = ['read', 'readv', 'write', 'writev', 'sendmsg', 'recvfrom', 'recvmsg', 'epoll_wait', 'epoll_pwait', 'epoll_ctl', 'futex', 'getrusage', 'clock_gettime', 'mprotect', 'madvise', 'munmap', 'mmap', 'sendfile64', 'splice', 'ioctl', 'setsockopt', 'getsockopt'];
    const e = events.map((n) => `syscalls:sys_enter_${n}`).join(',');
    const perf = collect('perf', ['stat', '-e', (process.env.EVENTS ?? e) + ',context-switches,cpu-clock', '-p', String(s.pid), '--', 'sleep', String(Number(seconds) - 1)]);
    const before = cpuSeconds(s.pid);
    const r = await wrk({ dir: work, name: `run`, originPort: origin.port, path, proxyPort: s.port, seconds: Number(seconds) });
    const cpu = cpuSeconds(s.pid) - before;
    const out = await perf.done;
    // perf ran seconds-1 of the wrk run: scale requests to that.
    const reqs = r.reqPerSec * (Number(seconds) - 1);
    console.log(`\n== ${s.name}: ${Math.round(r.reqPerSec)} req/s, ${((cpu * 1e6) / r.requests).toFixed(1)} µs/req, load ${os.loadavg()[0].toFixed(2)}`);
    for (const line of out.split('\n')) {
      const m = /^\s*([\d,.]+)\s+(?:msec\s+)?(\S+)/.exec(line);
      if (!m) continue;
      const n = Number(m[1].replace(/,/g, ''));
      if (n === 0) continue;
      console.log(`  ${m[2].replace('syscalls:sys_enter_', '').padEnd(20)} ${(n / reqs).toFixed(3)} /req`);
    }
    if (process.env.EVENTS) continue;
    // An strace sample of the writes (sizes, results), 1 s.
    const st = collect('timeout', ['-s', 'INT', '2', 'strace', '-f', '-qq', '-e', 'trace=write,writev,sendmsg,read,readv,recvfrom,epoll_wait,epoll_pwait,epoll_ctl', '-e', 'abbrev=all', '-s', '0', '-p', String(s.pid)]);
    const w = wrk({ dir: work, name: `st`, originPort: origin.port, path, proxyPort: s.port, seconds: 3 });
    const sout = await st.done;
    await w;
    const lines = sout.split('\n');
    console.log(`  strace sample (${lines.length} lines), lines 2000-2060:`);
    console.log(lines.slice(2000, 2060).join('\n'));
  }
  for (const s of systems) await s.stop();
  await origin.stop();
} finally {
  killAllChildren();
  rmSync(work, { recursive: true, force: true });
}
