/**
 * The extension's side of the IPC channel: forks the bundled proxy entry (dist/cli.js), sends it
 * configuration, receives batched events and answers to queries. Free of `vscode` imports so it
 * can be tested with plain Node as well.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';
import type { CacheEntrySummary, CacheStats } from '../cache/types';
import type { ProxyConfig } from '../core/config';
import type { ProxyEvent } from '../core/events';
import {
  IPC_ENV,
  type Address,
  type ChildMessage,
  type ParentMessage,
  type Query,
  type QueryResults,
  type WireStoredResponse,
} from '../ipc/protocol';

export type ProxyState = 'stopped' | 'starting' | 'running' | 'stopping';

/** Starting failed; `code` is the system error (EADDRINUSE, EACCES, ...) when there is one. */
export class ProxyStartError extends Error {
  constructor(message: string, readonly code?: string) {
    super(message);
    this.name = 'ProxyStartError';
  }
}

export class ProxyRequestError extends Error {
  constructor(message: string, readonly code?: string) {
    super(message);
    this.name = 'ProxyRequestError';
  }
}

export interface ProxyExit {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** False when the process died without being asked to stop: a crash. */
  expected: boolean;
  /** The last lines it wrote to stderr, for the log. */
  stderr: string;
}

interface Pending {
  resolve(value: unknown): void;
  reject(err: Error): void;
}

interface ControllerEvents {
  state: [ProxyState];
  events: [ProxyEvent[], number];
  exit: [ProxyExit];
  output: [string];
}

export interface ControllerOptions {
  /** Path of dist/cli.js. */
  entry: string;
  /** Extra environment for the child. */
  env?: NodeJS.ProcessEnv;
}

export class ProxyController extends EventEmitter<ControllerEvents> {
  private child: ChildProcess | null = null;
  private _state: ProxyState = 'stopped';
  private _address: Address | null = null;
  private _config: ProxyConfig | null = null;
  private pending = new Map<number, Pending>();
  private nextId = 1;
  private stopRequested = false;
  private stderrTail = '';

  constructor(private readonly options: ControllerOptions) {
    super();
  }

  get state(): ProxyState {
    return this._state;
  }

  get address(): Address | null {
    return this._address;
  }

  get config(): ProxyConfig | null {
    return this._config;
  }

  /** The child's process id while it runs (tests check it is gone after stop). */
  get pid(): number | undefined {
    return this.child?.pid;
  }

  private setState(state: ProxyState): void {
    if (state === this._state) return;
    this._state = state;
    this.emit('state', state);
  }

  /** Forks the proxy process and starts it; resolves with the listening address. */
  async start(config: ProxyConfig): Promise<Address> {
    if (this._state !== 'stopped') throw new ProxyStartError(`the proxy is ${this._state}`);
    this.setState('starting');
    this.stopRequested = false;
    this.stderrTail = '';
    const child = fork(this.options.entry, [], {
      // ELECTRON_RUN_AS_NODE: in desktop VS Code process.execPath is Electron; this makes it plain Node.
      env: { ...process.env, ...this.options.env, [IPC_ENV]: '1', ELECTRON_RUN_AS_NODE: '1' },
      execArgv: [],
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
    });
    this.child = child;
    child.stdout?.setEncoding('utf8').on('data', (s: string) => this.emit('output', s));
    child.stderr?.setEncoding('utf8').on('data', (s: string) => {
      this.stderrTail = (this.stderrTail + s).slice(-4000);
      this.emit('output', s);
    });

    return new Promise<Address>((resolve, reject) => {
      let settled = false;
      let startFailure: ProxyStartError | null = null;
      const settle = (fn: () => void) => {
        if (settled) return;
        settled = true;
        fn();
      };
      child.on('message', (m: ChildMessage) => {
        switch (m.type) {
          case 'started':
            this._address = m.address;
            this._config = config;
            this.setState('running');
            settle(() => resolve(m.address));
            break;
          case 'start-failed':
            // Rejected once the process has exited, so a retry finds the controller stopped.
            this.stopRequested = true;
            startFailure = new ProxyStartError(m.message, m.code);
            break;
          case 'events':
            this.emit('events', m.events, m.dropped);
            break;
          case 'result': {
            const p = this.pending.get(m.id);
            if (!p) break;
            this.pending.delete(m.id);
            if (m.ok) p.resolve(m.value);
            else p.reject(new ProxyRequestError(m.error ?? 'failed', m.code));
            break;
          }
          case 'stopped':
            break;
        }
      });
      child.on('error', (err) => settle(() => reject(new ProxyStartError(`cannot start the proxy process: ${err.message}`))));
      child.on('exit', (code, signal) => {
        const expected = this.stopRequested;
        if (this.child === child) {
          this.child = null;
          this._address = null;
          for (const p of this.pending.values()) p.reject(new ProxyRequestError('the proxy process exited'));
          this.pending.clear();
          this.setState('stopped');
        }
        settle(() => reject(startFailure ?? new ProxyStartError(`the proxy process exited before listening (${signal ?? `code ${code}`})${this.stderrTail ? `: ${this.stderrTail.trim()}` : ''}`)));
        this.emit('exit', { code, signal, expected, stderr: this.stderrTail });
      });
      this.send({ type: 'start', config });
    });
  }

  /** Applies a new configuration to the running proxy; rejects (old config stays) if it cannot. */
  async update(config: ProxyConfig): Promise<Address> {
    const address = (await this.request({ type: 'update', id: 0, config })) as Address;
    this._config = config;
    this._address = address;
    return address;
  }

  query<K extends Query['op']>(query: Extract<Query, { op: K }>): Promise<QueryResults[K]> {
    return this.request({ type: 'query', id: 0, query }) as Promise<QueryResults[K]>;
  }

  list(): Promise<CacheEntrySummary[]> {
    return this.query({ op: 'list' });
  }

  read(key: string): Promise<WireStoredResponse | null> {
    return this.query({ op: 'read', key });
  }

  stats(): Promise<CacheStats> {
    return this.query({ op: 'stats' });
  }

  /** Asks the proxy to finish in-flight responses and exit; kills it if it does not. */
  async stop(graceMs = 2_000): Promise<void> {
    const child = this.child;
    if (!child) return;
    this.stopRequested = true;
    this.setState('stopping');
    const exited = new Promise<void>((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) resolve();
      else child.once('exit', () => resolve());
    });
    this.send({ type: 'stop', graceMs });
    const timer = setTimeout(() => child.kill('SIGKILL'), graceMs + 3_000);
    await exited;
    clearTimeout(timer);
  }

  /** Synchronous last resort (deactivate, process exit): the child also exits on disconnect. */
  dispose(): void {
    const child = this.child;
    if (!child) return;
    this.stopRequested = true;
    try {
      if (child.connected) child.disconnect();
    } catch {
      // already gone
    }
    child.kill('SIGTERM');
  }

  private request(message: Extract<ParentMessage, { id: number }>): Promise<unknown> {
    if (this._state !== 'running' || !this.child) return Promise.reject(new ProxyRequestError('the proxy is not running'));
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.send({ ...message, id });
    });
  }

  private send(message: ParentMessage): void {
    const child = this.child;
    if (!child?.connected) return;
    child.send(message, (err) => {
      if (!err) return;
      if ('id' in message) {
        const p = this.pending.get(message.id);
        this.pending.delete(message.id);
        p?.reject(new ProxyRequestError(`cannot reach the proxy process: ${err.message}`));
      }
    });
  }
}
