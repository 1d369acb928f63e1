import type { Client } from 'undici';

/**
 * undici is loaded on the first pass-through, not at start-up: evaluating its bundle added about
 * 30 ms to every start (80 -> 111 ms to listening), and many sessions never forward this way.
 */
let undiciClient: typeof Client | null = null;
function clientClass(): typeof Client {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return (undiciClient ??= (require('undici') as typeof import('undici')).Client);
}

/** Connections to one origin busy at once on the quick path; past it requests take the ordinary path, whose agent queues them. */
const MAX_BUSY = 256;
/** Idle keep-alive connections kept per origin. */
const MAX_IDLE = 256;

/**
 * Keep-alive connections to one origin for the quick pass-through: one undici Client per
 * connection, the most recently used first. Not undici's Pool: after an aborted response a
 * Client opens a fresh connection for the request it just dropped (nodejs/undici#5845), which
 * then idles with no timer; here a connection whose request was cut short is destroyed whole.
 */
export class QuickConnections {
  private readonly idle: Client[] = [];
  private busy = 0;
  private closed = false;
  private readonly options: Client.Options;

  constructor(
    private readonly origin: string,
    timeoutMs: number,
    idleMs: number,
  ) {
    this.options = {
      headersTimeout: timeoutMs,
      bodyTimeout: timeoutMs,
      connect: { timeout: timeoutMs },
      // An idle connection lives as long as the origin's Keep-Alive hint says, at most the proxy's own idle timeout.
      keepAliveTimeout: Math.min(4000, idleMs),
      keepAliveMaxTimeout: idleMs,
    };
  }

  /** Whether a request can have a connection now. */
  get available(): boolean {
    return this.idle.length > 0 || this.canOpen;
  }

  /** Whether a new connection may be opened now. */
  get canOpen(): boolean {
    return !this.closed && this.busy < MAX_BUSY;
  }

  /** A connection for one request (`reused`: it has served one before), or null when none is available. */
  take(fresh = false): { client: Client; reused: boolean } | null {
    const client = fresh ? undefined : this.idle.pop();
    if (client !== undefined) {
      this.busy++;
      return { client, reused: true };
    }
    if (!this.canOpen) return null;
    this.busy++;
    return { client: new (clientClass())(this.origin, this.options), reused: false };
  }

  /** A connection back after its request: kept when the response was complete, else destroyed. */
  give(client: Client, complete: boolean): void {
    this.busy--;
    if (complete && !this.closed && !client.destroyed && this.idle.length < MAX_IDLE) this.idle.push(client);
    else void client.destroy().catch(() => {});
  }

  /** Closes the idle connections; busy ones finish their response first. */
  close(): void {
    this.closed = true;
    for (const client of this.idle) void client.destroy().catch(() => {});
    this.idle.length = 0;
  }
}

/** Origins with quick pass-through connections at once; the least recently created are closed beyond this. */
const MAX_QUICK_ORIGINS = 64;

/** The quick pass-through's connections to every origin, kept by the OriginClient (closed with it). */
export class QuickPools {
  private readonly origins = new Map<string, QuickConnections>();

  constructor(
    private readonly timeoutMs: number,
    private readonly idleMs: number,
  ) {}

  /** Keep-alive connections straight to `origin` (http://host[:port]). */
  for(origin: string): QuickConnections {
    let connections = this.origins.get(origin);
    if (connections === undefined) {
      if (this.origins.size >= MAX_QUICK_ORIGINS) {
        const [oldest, old] = this.origins.entries().next().value as [string, QuickConnections];
        this.origins.delete(oldest);
        old.close();
      }
      connections = new QuickConnections(origin, this.timeoutMs, this.idleMs);
      this.origins.set(origin, connections);
    }
    return connections;
  }

  close(): void {
    for (const connections of this.origins.values()) connections.close();
    this.origins.clear();
  }
}
