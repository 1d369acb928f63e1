import { spawn, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

/** The built CLI, as users run it. Tests run from the repository root (npm scripts). */
export const CLI = path.resolve(__dirname, '../../../../dist/cli.js');

export interface ChildProxy {
  proc: ChildProcess;
  pid: number;
  port: number;
  url: string;
  /** Everything printed so far (capped to the last 2 MB each). */
  stdout(): string;
  stderr(): string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Still running? */
  alive(): boolean;
  /** SIGTERM, then SIGKILL if it lingers. */
  stop(): Promise<void>;
}

/** Children still running: killed if the test process exits without stopping them (a failed or timed-out test). */
const liveChildren = new Set<ChildProcess>();
const killChildren = () => {
  for (const child of liveChildren) child.kill('SIGKILL');
};
process.once('exit', killChildren);
// The test runner stops a timed-out file with a signal, which skips 'exit' handlers.
for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.once(signal, () => {
    killChildren();
    process.exit(128 + (signal === 'SIGTERM' ? 15 : 2));
  });
}

function capture(stream: NodeJS.ReadableStream | null): () => string {
  let text = '';
  stream?.setEncoding('utf8');
  stream?.on('data', (s: string) => {
    text += s;
    if (text.length > 4_000_000) text = text.slice(-2_000_000);
  });
  return () => text;
}

/**
 * Runs `node dist/cli.js --port 0 ...args` as a real child process and waits for the address it
 * prints. `config` (optional) is written to a temporary JSON file passed with --config.
 */
export async function spawnProxy(args: string[], config?: Record<string, unknown>): Promise<ChildProxy> {
  let configDir: string | null = null;
  const full = ['--port', '0', ...args];
  if (config) {
    configDir = mkdtempSync(path.join(os.tmpdir(), 'faults-config-'));
    const file = path.join(configDir, 'config.json');
    writeFileSync(file, JSON.stringify(config));
    full.push('--config', file);
  }
  const proc = spawn(process.execPath, [CLI, ...full], { stdio: ['ignore', 'pipe', 'pipe'] });
  liveChildren.add(proc);
  proc.once('exit', () => liveChildren.delete(proc));
  const stdout = capture(proc.stdout);
  const stderr = capture(proc.stderr);
  let running = true;
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    proc.once('exit', (code, signal) => {
      running = false;
      if (configDir) rmSync(configDir, { recursive: true, force: true });
      resolve({ code, signal });
    }),
  );
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`proxy did not start: ${stderr()}`)), 15_000);
    const poll = setInterval(() => {
      const m = /listening on (http:\/\/[^\s]+)/.exec(stdout());
      if (m && /Caching proxy listening/.test(stdout())) {
        clearInterval(poll);
        clearTimeout(timer);
        resolve(m[1]);
      }
    }, 10);
    void exited.then(({ code }) => {
      clearInterval(poll);
      clearTimeout(timer);
      reject(new Error(`proxy exited with ${code} before listening: ${stderr()}`));
    });
  });
  const port = Number(new URL(url).port);
  return {
    proc,
    pid: proc.pid!,
    port,
    url,
    stdout,
    stderr,
    exited,
    alive: () => running,
    stop: async () => {
      if (!running) return;
      proc.kill('SIGTERM');
      const timer = setTimeout(() => proc.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(timer);
    },
  };
}

/** Runs the CLI to completion (for flag validation): exit code and output. */
export function runCli(args: string[], timeoutMs = 10_000): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const proc = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    const stdout = capture(proc.stdout);
    const stderr = capture(proc.stderr);
    const timer = setTimeout(() => proc.kill('SIGKILL'), timeoutMs);
    proc.once('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout: stdout(), stderr: stderr() });
    });
  });
}

/** Open file descriptors of a process, from /proc. */
export function openFds(pid: number): number {
  return readdirSync(`/proc/${pid}/fd`).length;
}

/** Resident set size of a process in bytes, from /proc. */
export function rssBytes(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) * 1024 : 0;
}
