/**
 * The proxy process's side of the IPC channel: runs the proxy core, streams its events to the
 * parent in batches and answers the parent's queries against the cache.
 */
import { ConfigError } from '../core/config';
import { EventBus, type ProxyEvent } from '../core/events';
import { ProxyError } from '../core/exchange';
import { exportHarFile, importHarFile } from '../har/files';
import { RunningProxy } from '../proxy';
import {
  EVENT_FLUSH_MS,
  MAX_EVENTS_PER_FLUSH,
  MAX_READ_BODY_BYTES,
  isParentMessage,
  type ChildMessage,
  type ParentMessage,
  type Query,
  type QueryResults,
  type WireStoredResponse,
} from './protocol';

/** Buffers events and sends them at most every EVENT_FLUSH_MS, so a burst is one message. */
class EventBatcher {
  private pending: ProxyEvent[] = [];
  private dropped = 0;
  private timer: NodeJS.Timeout | null = null;

  constructor(private readonly send: (m: ChildMessage) => void) {}

  push(event: ProxyEvent): void {
    if (this.pending.length >= MAX_EVENTS_PER_FLUSH) {
      this.dropped++;
    } else {
      this.pending.push(event);
    }
    this.timer ??= setTimeout(() => this.flush(), EVENT_FLUSH_MS);
  }

  flush(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    if (this.pending.length === 0 && this.dropped === 0) return;
    const message: ChildMessage = { type: 'events', events: this.pending, dropped: this.dropped };
    this.pending = [];
    this.dropped = 0;
    this.send(message);
  }
}

export function runIpcChild(): void {
  const send = (m: ChildMessage): void => {
    if (process.connected) process.send?.(m);
  };
  const events = new EventBus();
  const batcher = new EventBatcher(send);
  events.on((e) => batcher.push(e));

  let proxy: RunningProxy | null = null;
  let exiting = false;

  const exit = async (graceMs: number): Promise<void> => {
    if (exiting) return;
    exiting = true;
    // Never linger: if closing hangs, leave anyway (the port goes with the process).
    setTimeout(() => process.exit(0), graceMs + 3_000).unref();
    try {
      await proxy?.close(graceMs);
    } catch {
      // exiting regardless
    }
    batcher.flush();
    send({ type: 'stopped' });
    if (process.connected) process.disconnect();
    process.exit(0);
  };

  const answer = async (id: number, work: () => Promise<unknown>): Promise<void> => {
    try {
      send({ type: 'result', id, ok: true, value: await work() });
    } catch (err) {
      const e = err as Error & { code?: string; problems?: string[] };
      const message = err instanceof ConfigError ? err.problems.join('\n') : e.message;
      send({ type: 'result', id, ok: false, error: message, code: typeof e.code === 'string' ? e.code : undefined });
    }
  };

  const runQuery = async (query: Query): Promise<QueryResults[Query['op']]> => {
    if (!proxy) throw new Error('the proxy is not running');
    const cache = proxy.cache;
    switch (query.op) {
      case 'list':
        return cache.list();
      case 'read': {
        const stored = await cache.read(query.key);
        if (!stored) return null;
        const body = stored.body.subarray(0, MAX_READ_BODY_BYTES);
        const wire: WireStoredResponse = {
          summary: stored.summary,
          statusMessage: stored.statusMessage,
          headers: stored.headers,
          bodyBase64: body.toString('base64'),
          bodySize: stored.body.length,
          truncated: body.length < stored.body.length,
        };
        return wire;
      }
      case 'purge':
        return cache.purge(query.key);
      case 'purgeHost':
        return cache.purgeHost(query.host);
      case 'purgeAll':
        return cache.purgeAll();
      case 'revalidate':
        return cache.revalidate(query.key);
      case 'stats':
        return cache.stats();
      case 'startRecording':
        return proxy.startRecording(query.file, { overwrite: query.overwrite });
      case 'stopRecording':
        return proxy.stopRecording();
      case 'exportHar':
        return exportHarFile(cache, { match: query.match, host: query.host, key: query.key, redact: proxy.config.har.redact }, query.file);
      case 'importHar':
        return importHarFile(cache, query.file);
    }
  };

  const onMessage = async (message: ParentMessage): Promise<void> => {
    switch (message.type) {
      case 'start': {
        if (proxy) return;
        try {
          proxy = await RunningProxy.start(message.config, events);
          batcher.flush();
          send({ type: 'started', address: proxy.address });
        } catch (err) {
          const e = err as Error & { code?: string };
          batcher.flush();
          send({
            type: 'start-failed',
            message: err instanceof ConfigError ? err.problems.join('\n') : e.message,
            code: err instanceof ProxyError ? err.code : e.code,
          });
          await exit(0);
        }
        return;
      }
      case 'update':
        return answer(message.id, async () => {
          if (!proxy) throw new Error('the proxy is not running');
          await proxy.update(message.config);
          return proxy.address;
        });
      case 'query':
        return answer(message.id, () => runQuery(message.query));
      case 'stop':
        return exit(message.graceMs);
    }
  };

  process.on('message', (m: unknown) => {
    if (isParentMessage(m)) void onMessage(m);
  });
  // The parent went away (editor closed, extension host crashed): take the port down with us.
  process.on('disconnect', () => void exit(1_000));
  process.on('SIGTERM', () => void exit(2_000));
  process.on('SIGINT', () => void exit(2_000));
}
