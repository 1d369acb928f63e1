/**
 * The typed event stream out of the proxy. The CLI prints it as log lines; the extension
 * turns it into the output channel, the tree view and the status bar. Every event is a plain
 * JSON-serialisable object so it can cross the IPC boundary unchanged.
 */

export type LogLevel = 'trace' | 'debug' | 'info' | 'warn' | 'error';

export interface ListeningEvent {
  type: 'listening';
  host: string;
  port: number;
  url: string;
}

export interface ClosedEvent {
  type: 'closed';
}

/** A request has arrived and been routed to a target URL. */
export interface RequestEvent {
  type: 'request';
  id: number;
  method: string;
  url: string;
  httpVersion: string;
}

/** The response to a request has been fully sent (or the exchange ended). */
export interface ResponseEvent {
  type: 'response';
  id: number;
  method: string;
  url: string;
  status: number;
  /** Body bytes sent to the client. */
  bytes: number;
  durationMs: number;
  /** What the cache did, as in the Cache-Status header (e.g. "hit", "fwd=miss, stored"), if it was involved. */
  cache?: string;
  /** The client went away before the response was complete. */
  aborted?: boolean;
}

/** A request ended in an error answered by the proxy itself (4xx/5xx it generated). */
export interface ErrorEvent {
  type: 'error';
  id?: number;
  method?: string;
  url?: string;
  status?: number;
  code?: string;
  message: string;
}

export interface TunnelEvent {
  type: 'tunnel-open' | 'tunnel-close';
  id: number;
  /** host:port */
  target: string;
  bytesUp?: number;
  bytesDown?: number;
  durationMs?: number;
  /** The proxy terminated TLS itself (HTTPS interception): the requests inside are logged on their own. */
  intercepted?: boolean;
}

export interface UpgradeEvent {
  type: 'upgrade';
  id: number;
  url: string;
  protocol: string;
}

/** Something the user should know about once (not per request): disk full, bad cache dir, ... */
export interface NoticeEvent {
  type: 'notice';
  level: LogLevel;
  message: string;
}

export type CacheAction =
  | 'hit'
  | 'miss'
  | 'stored'
  | 'not-stored'
  | 'revalidated'
  | 'evicted'
  | 'purged'
  | 'prefetched'
  | 'coalesced'
  | 'served-stale'
  | 'invalidated'
  | 'corrupt';

export interface CacheEvent {
  type: 'cache';
  action: CacheAction;
  url: string;
  /** Cache key of the entry concerned, when there is one. */
  key?: string;
  /** Why (not-stored, evicted, corrupt, invalidated), or how (revalidated: "304" | "replaced"). */
  reason?: string;
  size?: number;
  status?: number;
  /** The rule (src/rules/) whose settings applied, if one did. */
  rule?: string;
  /**
   * The same request's response event carries this already (its Cache-Status names the reason
   * and it has the status): logged at debug, so that a request is one line at info.
   */
  inResponseLine?: true;
}

export type ProxyEvent =
  | ListeningEvent
  | ClosedEvent
  | RequestEvent
  | ResponseEvent
  | ErrorEvent
  | TunnelEvent
  | UpgradeEvent
  | NoticeEvent
  | CacheEvent;

export type ProxyEventListener = (event: ProxyEvent) => void;

const LEVEL_ORDER: readonly LogLevel[] = ['trace', 'debug', 'info', 'warn', 'error'];

/**
 * A tiny synchronous event bus. `active` lets hot paths skip building events nobody hears;
 * `traced`, `debugged` and `informed` let them skip per-request events (request; cache hit and
 * miss; response) when every listener said it ignores that level (the CLI at its level does).
 */
export class EventBus {
  private listeners: ProxyEventListener[] = [];
  private levels: LogLevel[] = [];
  active = false;
  traced = false;
  debugged = false;
  /** Someone hears info events (response lines): false with only `--quiet` listeners. */
  informed = false;

  /** `lowest`: the listener ignores events whose eventLevel is below it (they may not be emitted at all). */
  on(listener: ProxyEventListener, lowest: LogLevel = 'trace'): { dispose(): void } {
    this.listeners = [...this.listeners, listener];
    this.levels = [...this.levels, lowest];
    this.changed();
    return {
      dispose: () => {
        const i = this.listeners.indexOf(listener);
        if (i < 0) return;
        this.listeners = this.listeners.filter((_, j) => j !== i);
        this.levels = this.levels.filter((_, j) => j !== i);
        this.changed();
      },
    };
  }

  private changed(): void {
    const lowest = Math.min(...this.levels.map((l) => LEVEL_ORDER.indexOf(l)));
    this.active = this.listeners.length > 0;
    this.traced = lowest <= 0;
    this.debugged = lowest <= 1;
    this.informed = lowest <= 2;
  }

  emit(event: ProxyEvent): void {
    for (const listener of this.listeners) {
      try {
        listener(event);
      } catch {
        // A broken listener must never break a request.
      }
    }
  }
}

/** The level at which an event is logged. */
export function eventLevel(e: ProxyEvent): LogLevel {
  switch (e.type) {
    case 'error':
      return e.status !== undefined && e.status < 500 ? 'warn' : 'error';
    case 'notice':
      return e.level;
    case 'request':
      return 'trace';
    case 'tunnel-open':
    case 'upgrade':
      return 'debug';
    case 'cache':
      return e.action === 'corrupt' ? 'warn' : e.action === 'hit' || e.action === 'miss' || e.inResponseLine ? 'debug' : 'info';
    default:
      return 'info';
  }
}

/** One human-readable line per event, shared by the CLI and the extension's output channel. */
export function formatEvent(e: ProxyEvent): string {
  switch (e.type) {
    case 'listening':
      return `listening on ${e.url}`;
    case 'closed':
      return 'stopped';
    case 'request':
      return `#${e.id} → ${e.method} ${e.url} HTTP/${e.httpVersion}`;
    case 'response':
      return formatResponse(e);
    case 'error': {
      const what = e.method && e.url ? `${e.method} ${e.url} ` : '';
      const id = e.id !== undefined ? `#${e.id} ` : '';
      const status = e.status !== undefined ? `${e.status} ` : '';
      // Error bodies can run to several lines of advice; the log keeps the first.
      return `${id}${what}${status}${e.message.split('\n', 1)[0]}`;
    }
    case 'tunnel-open':
      return e.intercepted ? `#${e.id} CONNECT ${e.target} intercepted` : `#${e.id} CONNECT ${e.target} tunnel open`;
    case 'tunnel-close':
      if (e.intercepted) return `#${e.id} CONNECT ${e.target} intercepted connection closed ${Math.round(e.durationMs ?? 0)}ms`;
      return `#${e.id} CONNECT ${e.target} tunnel closed ↑${formatBytes(e.bytesUp ?? 0)} ↓${formatBytes(e.bytesDown ?? 0)} ${Math.round(e.durationMs ?? 0)}ms`;
    case 'upgrade':
      return `#${e.id} upgrade to ${e.protocol} ${e.url}`;
    case 'notice':
      return e.message;
    case 'cache': {
      const extra = [e.reason, e.status !== undefined ? String(e.status) : undefined, e.size !== undefined ? formatBytes(e.size) : undefined, e.rule !== undefined ? `rule ${e.rule}` : undefined]
        .filter(Boolean)
        .join(', ');
      return `cache ${e.action} ${e.url}${extra ? ` (${extra})` : ''}`;
    }
  }
}

/**
 * `#id METHOD url status [cache] size Nms`. Everything between the id and the duration is
 * remembered for the last response: a run of hits on one URL (within a second, while the ttl
 * stays the same) formats only the id and the duration, and the line is five strings, not
 * fifteen, for the log writer's batch to copy out (issue 16: the log line was 15% of a 1 KiB hit).
 */
function formatResponse(e: ResponseEvent): string {
  if (e.aborted) return `#${e.id}${responseMiddle(e)}${Math.round(e.durationMs)}ms (client aborted)`;
  return `#${e.id}${responseMiddle(e)}${Math.round(e.durationMs)}ms`;
}

const middle = { method: '', url: '', status: 0, cache: undefined as string | undefined, bytes: -1, text: '', flat: false };
/** ` METHOD url status [cache] size ` of a response, the last one's remembered. */
function responseMiddle(e: ResponseEvent): string {
  const m = middle;
  if (e.url === m.url && e.status === m.status && e.cache === m.cache && e.bytes === m.bytes && e.method === m.method) {
    // Asked for twice: made one flat string (a template's result is a tree of pieces every line would copy).
    if (!m.flat) {
      m.flat = true;
      m.text = [' ', e.method, ' ', e.url, ' ', e.status, e.cache ? ` [${e.cache}]` : '', ' ', formatBytes(e.bytes), ' '].join('');
    }
    return m.text;
  }
  m.method = e.method;
  m.url = e.url;
  m.status = e.status;
  m.cache = e.cache;
  m.bytes = e.bytes;
  m.flat = false;
  return (m.text = ` ${e.method} ${e.url} ${e.status}${e.cache ? ` [${e.cache}]` : ''} ${formatBytes(e.bytes)} `);
}

let lastBytes = -1;
let lastBytesText = '';
export function formatBytes(n: number): string {
  // A run of requests for one URL logs the same size again and again: toFixed is the costly part.
  if (n === lastBytes) return lastBytesText;
  lastBytes = n;
  return (lastBytesText = bytesText(n));
}

function bytesText(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KB`;
  if (n < 1024 * 1024 * 1024) return `${(n / 1024 / 1024).toFixed(1)} MB`;
  return `${(n / 1024 / 1024 / 1024).toFixed(2)} GB`;
}
