/**
 * Messages between the extension (parent) and the proxy process (child, `dist/cli.js` forked
 * with CACHING_PROXY_IPC=1). Everything is plain JSON: the channel uses Node's default
 * serialisation, and a stored body crosses it as base64.
 */
import type { CacheEntrySummary, CacheStats } from '../cache/types';
import type { ProxyConfig } from '../core/config';
import type { ProxyEvent } from '../core/events';
import type { ExportResult } from '../har/files';
import type { ImportReport } from '../har/import';
import type { RecordingState } from '../proxy';

export const IPC_ENV = 'CACHING_PROXY_IPC';

/** How often the child flushes buffered events to the parent. */
export const EVENT_FLUSH_MS = 100;
/** Most events sent in one flush; beyond that the child counts and drops (the editor must never drown). */
export const MAX_EVENTS_PER_FLUSH = 1000;
/** Bodies larger than this are cut when read for display. */
export const MAX_READ_BODY_BYTES = 4 * 1024 * 1024;

export interface Address {
  host: string;
  port: number;
  url: string;
}

// ---- parent -> child -------------------------------------------------------------------

export interface StartMessage {
  type: 'start';
  config: ProxyConfig;
}

/** Applies a new configuration live; answered by a `result` with the (maybe new) Address. */
export interface UpdateMessage {
  type: 'update';
  id: number;
  config: ProxyConfig;
}

export type Query =
  | { op: 'list' }
  | { op: 'read'; key: string }
  | { op: 'purge'; key: string }
  | { op: 'purgeHost'; host: string }
  | { op: 'purgeAll' }
  | { op: 'revalidate'; key: string }
  | { op: 'stats' }
  // HAR (src/har/): files are read and written by the proxy process.
  | { op: 'startRecording'; file: string; overwrite?: boolean }
  | { op: 'stopRecording' }
  | { op: 'exportHar'; file: string; match?: string; host?: string; key?: string }
  | { op: 'importHar'; file: string };

export interface QueryMessage {
  type: 'query';
  id: number;
  query: Query;
}

/** Stop serving (in-flight responses get `graceMs`), then exit. */
export interface StopMessage {
  type: 'stop';
  graceMs: number;
}

export type ParentMessage = StartMessage | UpdateMessage | QueryMessage | StopMessage;

// ---- child -> parent -------------------------------------------------------------------

export interface StartedMessage {
  type: 'started';
  address: Address;
}

export interface StartFailedMessage {
  type: 'start-failed';
  message: string;
  /** e.g. EADDRINUSE, EACCES */
  code?: string;
}

export interface EventsMessage {
  type: 'events';
  events: ProxyEvent[];
  /** Events left out of this batch because too many arrived at once. */
  dropped: number;
}

export interface ResultMessage {
  type: 'result';
  id: number;
  ok: boolean;
  value?: unknown;
  error?: string;
  code?: string;
}

export interface StoppedMessage {
  type: 'stopped';
}

export type ChildMessage = StartedMessage | StartFailedMessage | EventsMessage | ResultMessage | StoppedMessage;

/** What each query resolves with. */
export interface QueryResults {
  list: CacheEntrySummary[];
  read: WireStoredResponse | null;
  purge: boolean;
  purgeHost: number;
  purgeAll: number;
  revalidate: CacheEntrySummary | null;
  stats: CacheStats;
  startRecording: RecordingState;
  stopRecording: RecordingState | null;
  exportHar: ExportResult;
  importHar: ImportReport;
}

/** StoredResponse as it crosses the channel. */
export interface WireStoredResponse {
  summary: CacheEntrySummary;
  statusMessage: string;
  headers: Record<string, string | string[]>;
  bodyBase64: string;
  /** The whole stored body's size; larger than the decoded base64 when it was cut. */
  bodySize: number;
  truncated: boolean;
}

export function isParentMessage(m: unknown): m is ParentMessage {
  return typeof m === 'object' && m !== null && typeof (m as { type?: unknown }).type === 'string';
}
