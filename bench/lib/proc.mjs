// Process, CPU and memory helpers for the benchmark (Linux only: reads /proc).
import { spawn, spawnSync, execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';

export const CPUS = os.cpus().length;
/** The proxy under test runs on CPU 0; wrk, curl, the origin and this runner on CPU 1. */
export const PROXY_CPU = '0';
export const CLIENT_CPU = CPUS >= 2 ? '1' : '0';
export const CLK_TCK = Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100;

const children = new Set();

/** Spawns a command pinned to the given CPU; every child is killed when the runner exits. */
export function spawnPinned(cpu, cmd, args, options = {}) {
  // Its own process group, so stopping it also stops whatever it forked (an nginx worker left
  // behind would keep our output pipes open and this runner alive).
  const child = spawn('taskset', ['-c', cpu, cmd, ...args], { stdio: ['ignore', 'pipe', 'pipe'], detached: true, ...options });
  child.output = '';
  const keep = (chunk) => {
    child.output += chunk.toString();
    if (child.output.length > 64_000) child.output = child.output.slice(-32_000);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  children.add(child);
  child.once('exit', () => {
    children.delete(child);
    signalGroup(child, 'SIGKILL');
  });
  return child;
}

/** Stops a child: signal, then SIGKILL after graceMs. Resolves when it has exited. */
export function stopChild(child, signal = 'SIGTERM', graceMs = 5000) {
  if (!child || child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => signalGroup(child, 'SIGKILL'), graceMs);
    // On exit, spawnPinned's handler also stops anything it forked and left behind.
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    child.kill(signal);
  });
}

function signalGroup(child, signal) {
  try {
    process.kill(-child.pid, signal);
  } catch {
    /* the group is gone */
  }
}

export function killAllChildren() {
  for (const c of children) signalGroup(c, 'SIGKILL');
}

/** Waits until a line of the child's output matches, or fails with the output so far. */
export function waitForOutput(child, pattern, timeoutMs = 30_000) {
  return new Promise((resolve, reject) => {
    const check = () => {
      const m = pattern.exec(child.output);
      if (m) {
        done();
        resolve(m);
      }
    };
    const onExit = (code) => {
      done();
      reject(new Error(`process exited (${code}) before printing ${pattern}:\n${child.output.slice(-2000)}`));
    };
    const timer = setTimeout(() => {
      done();
      reject(new Error(`timed out waiting for ${pattern}:\n${child.output.slice(-2000)}`));
    }, timeoutMs);
    const done = () => {
      clearTimeout(timer);
      child.stdout?.off('data', check);
      child.stderr?.off('data', check);
      child.off('exit', onExit);
    };
    child.stdout?.on('data', check);
    child.stderr?.on('data', check);
    child.once('exit', onExit);
    check();
  });
}

/** A port free right now on 127.0.0.1 (for daemons that cannot be told to pick one and report it). */
export function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

export async function waitForPort(port, timeoutMs = 30_000) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const ok = await new Promise((resolve) => {
      const sock = net.connect(port, '127.0.0.1');
      sock.once('connect', () => {
        sock.destroy();
        resolve(true);
      });
      sock.once('error', () => resolve(false));
    });
    if (ok) return;
    await sleep(100);
  }
  throw new Error(`nothing listens on 127.0.0.1:${port} after ${timeoutMs} ms`);
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** User and system CPU seconds a process (all threads), or one of its threads, has used so far; throws if it is gone. */
export function userSysSeconds(pid, tid = null) {
  const stat = readFileSync(tid === null ? `/proc/${pid}/stat` : `/proc/${pid}/task/${tid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return { user: Number(fields[11]) / CLK_TCK, sys: Number(fields[12]) / CLK_TCK };
}

/** CPU seconds (user + system, all threads) a process has used so far; NaN if it is gone. */
export function cpuSeconds(pid) {
  try {
    const { user, sys } = userSysSeconds(pid);
    return user + sys;
  } catch {
    return NaN;
  }
}

/**
 * Runs this script again pinned to the client CPU (it and the clients it spawns stay away from
 * the proxy under test), and exits with its status; returns at once in the pinned run.
 */
export function pinRunnerToClientCpu() {
  if (CPUS < 2 || process.env.BENCH_RUNNER_PINNED) return;
  const r = spawnSync('taskset', ['-c', CLIENT_CPU, process.execPath, ...process.argv.slice(1)], { stdio: 'inherit', env: { ...process.env, BENCH_RUNNER_PINNED: '1' } });
  process.exit(r.status ?? 1);
}

/** Busy and total jiffies per CPU, to see how much of each core other work took during a run. */
export function cpuTimes() {
  const out = {};
  for (const line of readFileSync('/proc/stat', 'utf8').split('\n')) {
    const m = /^cpu(\d+)\s+(.*)$/.exec(line);
    if (!m) continue;
    const v = m[2].split(/\s+/).map(Number);
    const idle = v[3] + (v[4] || 0);
    const total = v.slice(0, 8).reduce((a, b) => a + b, 0);
    out[m[1]] = { busy: total - idle, total };
  }
  return out;
}

export function busyShare(before, after, cpu) {
  const b = before[cpu];
  const a = after[cpu];
  if (!a || !b || a.total === b.total) return NaN;
  return (a.busy - b.busy) / (a.total - b.total);
}

/** Resets the peak-RSS mark (VmHWM) of a process to its current RSS. */
export function resetPeakRss(pid) {
  try {
    writeFileSync(`/proc/${pid}/clear_refs`, '5');
    return true;
  } catch {
    return false;
  }
}

/** {rss, hwm} in bytes from /proc/PID/status. */
export function memory(pid) {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (name) => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN) * 1024;
    return { rss: kb('VmRSS'), hwm: kb('VmHWM') };
  } catch {
    return { rss: NaN, hwm: NaN };
  }
}

/** Runs a command to completion; resolves with stdout (rejects with stderr on failure). */
export function run(cmd, args, options = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], ...options });
    let out = '';
    let err = '';
    child.stdout.on('data', (c) => (out += c));
    child.stderr.on('data', (c) => (err += c));
    child.once('error', reject);
    child.once('exit', (code) => (code === 0 ? resolve(out) : reject(new Error(`${cmd} ${args.join(' ')} exited ${code}: ${err || out}`))));
  });
}
