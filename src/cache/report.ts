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
    if (this.events.active) this.event('hit', entry.url, { key: entry.key, status: entry.status, size: entry.size });
  }

  miss(url: string, key?: string): void {
    this.misses++;
    this.event('miss', url, key === undefined ? {} : { key });
  }
}
