import type { Exchange, UpstreamRequest } from '../core/exchange';
import type { CacheReport } from './report';

const RESOLVED = Promise.resolve();

/** One origin fetch for a key that others may wait on. */
export interface Fill {
  promise: Promise<void>;
  waiters: number;
}

/** A fetch nobody can join (an uncacheable URL, or one that must not replace a registered fetch). */
export function unjoinableFill(): Fill {
  return { promise: RESOLVED, waiters: 0 };
}

/** The fetches under way, by key: concurrent requests for a key join the one fetch (collapsing). */
export class Fills {
  private readonly running = new Map<string, Fill>();

  constructor(private readonly report: CacheReport) {}

  get(key: string): Fill | undefined {
    return this.running.get(key);
  }

  has(key: string): boolean {
    return this.running.has(key);
  }

  /** Registers the fetch under way for a key so concurrent requests join it; it unregisters itself when settled. */
  start(key: string, run: (fill: Fill) => Promise<void>): Fill {
    const fill: Fill = { promise: RESOLVED, waiters: 0 };
    fill.promise = run(fill);
    this.running.set(key, fill);
    void fill.promise.catch(() => {}).then(() => {
      if (this.running.get(key) === fill) this.running.delete(key);
    });
    return fill;
  }

  /** Waits for a fetch already under way; counted, so the fetch is not cancelled while others wait for it. */
  async join(running: Fill, href: string, key: string): Promise<void> {
    running.waiters++;
    this.report.event('coalesced', href, { key });
    try {
      await running.promise.catch(() => {});
    } finally {
      running.waiters--;
    }
  }

  /** Resolves once every fetch under way has settled. */
  async settled(): Promise<void> {
    await Promise.all([...this.running.values()].map((f) => f.promise.catch(() => {})));
  }
}

/** The origin request stops when its client leaves, unless other requests wait for its response. */
export function clientBound(ex: Exchange, fill: Fill | null): Pick<UpstreamRequest, 'client' | 'othersWaiting'> {
  return { client: ex.res, othersWaiting: () => (fill?.waiters ?? 0) > 0 };
}
