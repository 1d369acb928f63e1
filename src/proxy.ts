import { createCache, type HttpCache } from './cache';
import type { ProxyConfig } from './core/config';
import { EventBus } from './core/events';
import type { Origin, RequestHandler } from './core/exchange';
import { FORWARD_EVERYTHING, type QuickLane } from './core/quick/lane';
import { createPassThrough } from './core/forward';
import { OriginClient } from './core/origin';
import { ProxyServer, type ListenAddress } from './core/server';
import { Interceptor } from './core/tls/interceptor';
import { recordingHandler } from './har/record';
import { HarRecorder } from './har/recorder';
import { ReplayLog, replayHandler } from './har/replay';
import { RuleSet } from './rules/ruleSet';
import { shapingHandler, shapingQuickLane } from './rules/shaping';

/** The recording in progress: its file and how many entries it holds. */
export interface RecordingState {
  file: string;
  entries: number;
}

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
    private interceptor: Interceptor | null,
  ) {}

  static async start(config: ProxyConfig, events = new EventBus()): Promise<RunningProxy> {
    const origin = new OriginClient(config);
    // The cache and pass-through reach origins through this indirection, so an upstream change swaps the client under them.
    let current: OriginClient = origin;
    const originRef: Origin = { fetch: (r) => current.fetch(r) };
    const passThrough = createPassThrough(originRef);
    const replay = config.cache.policy === 'replay' && config.har.replay ? await ReplayLog.load(config.har.replay) : null;
    const recorder = config.har.record ? await HarRecorder.open(config.har.record) : null;
    const cache = await createCache(config.cache, { events, origin: originRef });
    const lanes = handlerLanes(config, { cache, passThrough, originRef, replay, recorder });
    const server = new ProxyServer(config, events, origin, lanes.handler);
    server.setQuickLane(lanes.quick);
    let address: ListenAddress;
    let interceptor: Interceptor | null = null;
    try {
      interceptor = await Interceptor.create(config.https, events);
      server.setInterceptor(interceptor);
      address = await server.listen();
    } catch (err) {
      await cache.close();
      await recorder?.close();
      origin.close();
      throw err;
    }
    const proxy = new RunningProxy(config, events, origin, server, cache, address, interceptor);
    proxy.setOrigin = (o) => (current = o);
    proxy.passThrough = passThrough;
    proxy.originRef = originRef;
    proxy.replay = replay;
    if (recorder) proxy.watchRecorder(recorder);
    return proxy;
  }

  private setOrigin: (o: OriginClient) => void = () => {};
  private passThrough!: ReturnType<typeof createPassThrough>;
  private originRef!: Origin;
  private replay: ReplayLog | null = null;
  private recorder: HarRecorder | null = null;

  private lanes(config: ProxyConfig): Lanes {
    return handlerLanes(config, { cache: this.cache, passThrough: this.passThrough, originRef: this.originRef, replay: this.replay, recorder: this.recorder });
  }

  private applyLanes(): void {
    const lanes = this.lanes(this._config);
    this.server.setHandler(lanes.handler);
    this.server.setQuickLane(lanes.quick);
  }

  private watchRecorder(recorder: HarRecorder): void {
    this.recorder = recorder;
    this.events.emit({ type: 'notice', level: 'info', message: `recording every exchange to ${recorder.file}${recorder.entries ? ` (continuing its ${recorder.entries} entries)` : ''}` });
  }

  /** The recording in progress, if any. */
  get recording(): RecordingState | null {
    return this.recorder ? { file: this.recorder.file, entries: this.recorder.entries } : null;
  }

  /**
   * Starts appending every exchange to a HAR file (ends a recording already running). While
   * recording, the quick path is off: every request passes the recording tap.
   */
  async startRecording(file: string, options: { overwrite?: boolean } = {}): Promise<RecordingState> {
    const recorder = await HarRecorder.open(file, {
      overwrite: options.overwrite,
      onError: (err) => {
        this.events.emit({ type: 'notice', level: 'error', message: `recording to ${file} stopped: ${err.message}` });
        if (this.recorder === recorder) void this.stopRecording();
      },
    });
    await this.stopRecording();
    this.watchRecorder(recorder);
    this.applyLanes();
    return { file: recorder.file, entries: recorder.entries };
  }

  /** Ends the recording: the file is complete once this resolves. Null when none was running. */
  async stopRecording(): Promise<RecordingState | null> {
    const recorder = this.recorder;
    if (!recorder) return null;
    this.recorder = null;
    this.applyLanes();
    await recorder.close();
    this.events.emit({ type: 'notice', level: 'info', message: `recording stopped: ${recorder.entries} ${recorder.entries === 1 ? 'entry' : 'entries'} in ${recorder.file}` });
    return { file: recorder.file, entries: recorder.entries };
  }

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
      prev.noProxy.join(',') !== next.noProxy.join(',') || prev.https.upstreamCa !== next.https.upstreamCa;
    // Made first: a CA that cannot be read leaves everything as it was.
    const interceptor = this.interceptor?.sameCa(next.https) ? this.interceptor.withLists(next.https) : await Interceptor.create(next.https, this.events);
    if (next.cache.policy === 'replay' && next.har.replay && (prev.har.replay !== next.har.replay || prev.cache.policy !== 'replay')) {
      this.replay = await ReplayLog.load(next.har.replay);
    } else if (next.cache.policy !== 'replay') {
      this.replay = null;
    }
    if (next.har.record !== prev.har.record) {
      if (next.har.record) await this.startRecording(next.har.record);
      else await this.stopRecording();
    }
    await this.cache.updateConfig(next.cache);
    const { handler, quick } = this.lanes(next);
    if (originChanged) {
      const old = this.origin;
      this.origin = new OriginClient(next);
      this.setOrigin(this.origin);
      this.server.setOrigin(this.origin);
      old.close();
    }
    if (serverChanged) {
      const server = new ProxyServer(next, this.events, this.origin, handler);
      server.setQuickLane(quick);
      server.setInterceptor(interceptor);
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
      this.server.setQuickLane(quick);
      this.server.setInterceptor(interceptor);
    }
    this.interceptor = interceptor;
    this._config = next;
  }

  /** The local CA while HTTPS interception is on. */
  get ca(): Interceptor['ca'] | null {
    return this.interceptor?.ca ?? null;
  }

  async close(graceMs = 10_000): Promise<void> {
    await this.server.close(graceMs);
    await this.stopRecording();
    await this.cache.close();
    this.origin.close();
  }
}

interface Lanes {
  handler: RequestHandler;
  /** With caching off every request the quick path reads is forwarded; otherwise the cache decides. */
  quick: QuickLane | null;
}

/**
 * Who answers requests under a config: the cache, the pass-through, or a HAR replay; and the
 * recording tap around it while recording (then nothing takes the quick path, so every
 * exchange is recorded).
 */
function handlerLanes(
  config: ProxyConfig,
  parts: { cache: HttpCache; passThrough: RequestHandler; originRef: Origin; replay: ReplayLog | null; recorder: HarRecorder | null },
): Lanes {
  const off = config.cache.policy === 'off';
  let lanes: Lanes = { handler: off ? parts.passThrough : parts.cache.handler, quick: off ? FORWARD_EVERYTHING : parts.cache.quick };
  if (config.cache.policy === 'replay' && parts.replay) {
    lanes = { handler: replayHandler(parts.replay, config.har.replayMiss === 'forward' ? parts.originRef : null), quick: null };
  }
  // The one RuleSet of this configuration: the cache's per-request settings and the shaping.
  const rules = RuleSet.of(config.rules, config.presets);
  parts.cache.setRules(rules);
  // Inside the recording: a recording shows the delays and failures the client saw.
  lanes = { handler: shapingHandler(rules, lanes.handler), quick: shapingQuickLane(rules, lanes.quick) };
  if (parts.recorder) {
    const options = { maxBodyBytes: Math.floor(config.har.recordMaxBodyMB * 1024 * 1024), redact: config.har.redact };
    lanes = { handler: recordingHandler(lanes.handler, parts.recorder, options), quick: null };
  }
  return lanes;
}

export const startProxy = RunningProxy.start;
