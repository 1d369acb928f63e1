import { createCache, type HttpCache } from './cache';
import type { ProxyConfig } from './core/config';
import { EventBus } from './core/events';
import type { Origin, QuickPassThrough } from './core/exchange';
import { createPassThrough } from './core/forward';
import { OriginClient } from './core/origin';
import { ProxyServer, type ListenAddress } from './core/server';

/**
 * The proxy as one running thing: server + origin client + cache, started from a ProxyConfig.
 * The CLI and the extension's proxy process both run exactly this.
 */
export class RunningProxy {
  private constructor(
    private _config: ProxyConfig,
    readonly events: EventBus,
    private origin: OriginClient,
    private server: ProxyServer,
    readonly cache: HttpCache,
    private _address: ListenAddress,
  ) {}

  static async start(config: ProxyConfig, events = new EventBus()): Promise<RunningProxy> {
    const origin = new OriginClient(config);
    // The cache and pass-through reach origins through this indirection, so an upstream change swaps the client under them.
    let current: OriginClient = origin;
    const originRef: Origin = { fetch: (r) => current.fetch(r) };
    const passThrough = createPassThrough(originRef);
    const cache = await createCache(config.cache, { events, origin: originRef });
    const off = config.cache.policy === 'off';
    const server = new ProxyServer(config, events, origin, off ? passThrough : cache.handler);
    server.setQuickResponder(...quickLanes(off, cache));
    let address: ListenAddress;
    try {
      address = await server.listen();
    } catch (err) {
      await cache.close();
      origin.close();
      throw err;
    }
    const proxy = new RunningProxy(config, events, origin, server, cache, address);
    proxy.setOrigin = (o) => (current = o);
    proxy.passThrough = passThrough;
    return proxy;
  }

  private setOrigin: (o: OriginClient) => void = () => {};
  private passThrough!: ReturnType<typeof createPassThrough>;

  get config(): ProxyConfig {
    return this._config;
  }

  get address(): ListenAddress {
    return this._address;
  }

  /**
   * Applies a new configuration without losing the cache: cache settings are handed to the
   * cache; listener or routing changes rebind the server (in-flight responses finish first).
   */
  async update(next: ProxyConfig): Promise<void> {
    const prev = this._config;
    const serverChanged =
      prev.port !== next.port || prev.host !== next.host || prev.allowRemote !== next.allowRemote ||
      JSON.stringify(prev.auth) !== JSON.stringify(next.auth) || prev.allowedHosts.join(',') !== next.allowedHosts.join(',') || prev.maxHeaderBytes !== next.maxHeaderBytes ||
      prev.idleTimeoutSeconds !== next.idleTimeoutSeconds || prev.headersTimeoutSeconds !== next.headersTimeoutSeconds;
    const originChanged =
      prev.upstreamProxy !== next.upstreamProxy || prev.timeoutSeconds !== next.timeoutSeconds || prev.idleTimeoutSeconds !== next.idleTimeoutSeconds ||
      prev.noProxy.join(',') !== next.noProxy.join(',');
    await this.cache.updateConfig(next.cache);
    const off = next.cache.policy === 'off';
    const handler = off ? this.passThrough : this.cache.handler;
    const quick = quickLanes(off, this.cache);
    if (originChanged) {
      const old = this.origin;
      this.origin = new OriginClient(next);
      this.setOrigin(this.origin);
      this.server.setOrigin(this.origin);
      old.close();
    }
    if (serverChanged) {
      const server = new ProxyServer(next, this.events, this.origin, handler);
      server.setQuickResponder(...quick);
      if (prev.port !== next.port) {
        // Bind the new listener first: if the port is taken, the old one keeps serving.
        this._address = await server.listen();
        await this.server.close(2_000);
      } else {
        await this.server.close(2_000);
        this._address = await server.listen();
      }
      this.server = server;
    } else {
      this.server.setHandler(handler);
      this.server.setQuickResponder(...quick);
    }
    this._config = next;
  }

  async close(graceMs = 10_000): Promise<void> {
    await this.server.close(graceMs);
    await this.cache.close();
    this.origin.close();
  }
}

/** With caching off every plain request is forwarded on the quick path; otherwise the cache says which. */
const FORWARD_ALL: QuickPassThrough = { decide: () => '', responded: () => {} };

function quickLanes(cachingOff: boolean, cache: HttpCache): [HttpCache['quick'] | null, QuickPassThrough] {
  return cachingOff ? [null, FORWARD_ALL] : [cache.quick, cache.quickPass];
}

export const startProxy = RunningProxy.start;
