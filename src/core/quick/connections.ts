import { OriginConnection, quickOriginSupported, type OriginConnectionOptions } from './originConnection';

/** Connections to one origin busy at once on the quick path; past it requests take the ordinary path, whose agent queues them. */
const MAX_BUSY = 256;
/** Idle keep-alive connections kept per origin. */
const MAX_IDLE = 256;

/**
 * Keep-alive connections to one origin for the quick pass-through, the most recently used
 * first. Each is one socket read by Node's HTTP parser (originConnection.ts); a connection whose
 * response was cut short, or ended anything but cleanly, is closed, never reused. (Before
 * session 7 each was an undici Client, not undici's Pool: after an aborted response a Client
 * opened a fresh connection for the request it had just dropped, nodejs/undici#5845, which then
 * idled with no timer. A connection here never opens another by itself.)
 */
export class QuickConnections {
  private readonly idle: OriginConnection[] = [];
  private busy = 0;
  private closed = false;
  private readonly options: OriginConnectionOptions;
  private readonly forget = (connection: OriginConnection): void => {
    const i = this.idle.lastIndexOf(connection);
    if (i >= 0) this.idle.splice(i, 1);
  };

  constructor(
    private readonly hostname: string,
    private readonly port: number,
    timeoutMs: number,
    idleMs: number,
  ) {
    this.options = {
      timeoutMs,
      // An idle connection lives as long as the origin's Keep-Alive hint says, at most the proxy's own idle timeout.
      keepAliveMs: Math.min(4000, idleMs),
      keepAliveMaxMs: idleMs,
      maxHeaderBytes: 0,
    };
  }

  /** Whether a request can have a connection now. */
  get available(): boolean {
    return this.idle.length > 0 || this.canOpen;
  }

  /** Whether a new connection may be opened now. */
  get canOpen(): boolean {
    return quickOriginSupported && !this.closed && this.busy < MAX_BUSY;
  }

  /** A connection for one request (`reused`: it has served one before), or null when none is available. */
  take(fresh = false): { connection: OriginConnection; reused: boolean } | null {
    const connection = fresh ? undefined : this.idle.pop();
    if (connection !== undefined) {
      this.busy++;
      return { connection, reused: true };
    }
    if (!this.canOpen) return null;
    this.busy++;
    return { connection: new OriginConnection(this.hostname, this.port, this.options, this.forget), reused: false };
  }

  /** A connection back after its request: kept when the response was complete and it may be reused, else closed. */
  give(connection: OriginConnection, complete: boolean): void {
    this.busy--;
    if (complete && !this.closed && connection.reusable && this.idle.length < MAX_IDLE) this.idle.push(connection);
    else connection.destroy();
  }

  /** Closes the idle connections; busy ones finish their response first. */
  close(): void {
    this.closed = true;
    for (const connection of this.idle.splice(0)) connection.destroy();
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

  /** Keep-alive connections straight to `origin` (http://host[:port]), at `hostname` and `port`. */
  for(origin: string, hostname: string, port: number): QuickConnections {
    let connections = this.origins.get(origin);
    if (connections === undefined) {
      if (this.origins.size >= MAX_QUICK_ORIGINS) {
        const [oldest, old] = this.origins.entries().next().value as [string, QuickConnections];
        this.origins.delete(oldest);
        old.close();
      }
      connections = new QuickConnections(hostname, port, this.timeoutMs, this.idleMs);
      this.origins.set(origin, connections);
    }
    return connections;
  }

  close(): void {
    for (const connections of this.origins.values()) connections.close();
    this.origins.clear();
  }
}
