import type { CacheAction, EventBus, LogLevel } from '../core/events';
import type { Entry } from './entry';

export interface CacheEventDetail {
  key?: string;
  reason?: string;
  size?: number;
  status?: number;
  rule?: string;
}

/** What the cache tells the world: cache events, notices, and the hit and miss counts. */
export class CacheReport {
  hits = 0;
  misses = 0;

  constructor(private readonly events: EventBus) {}

  get active(): boolean {
    return this.events.active;
  }

  event(action: CacheAction, url: string, detail: CacheEventDetail = {}): void {
    if (this.events.active) this.events.emit({ type: 'cache', action, url, ...detail });
  }

  notice(level: LogLevel, message: string): void {
    this.events.emit({ type: 'notice', level, message });
  }

  /** An answer from a stored entry; `counted: false` when the request was already counted (a deferred miss). */
  hit(entry: Entry, counted = true): void {
    if (counted) this.hits++;
    entry.hits++;
    if (this.events.debugged) this.events.emit({ type: 'cache', action: 'hit', url: entry.url, key: entry.key, status: entry.status, size: entry.size });
  }

  miss(url: string, key?: string): void {
    this.misses++;
    if (this.events.debugged) this.events.emit(key === undefined ? { type: 'cache', action: 'miss', url } : { type: 'cache', action: 'miss', url, key });
  }

  /** A stored event the request's response line announces already (`stored` in its Cache-Status; logged at debug). */
  storedInResponse(url: string, detail: CacheEventDetail): void {
    if (this.events.debugged) this.events.emit({ type: 'cache', action: 'stored', url, ...detail, inResponseLine: true });
  }

  /** A not-stored event whose reason and status the request's response line carries already (logged at debug). */
  notStoredInResponse(url: string, reason: string, status: number, rule?: string): void {
    if (this.events.debugged) this.events.emit({ type: 'cache', action: 'not-stored', url, reason, status, rule, inResponseLine: true });
  }
}
