import { newQuickMemo, type QuickMemo } from '../core/quick/answer';
import type { IndexRecord } from './entryMeta';
import { viewPolicy, type Policy } from './semantics';

/** What the hot path needs of an entry once its metadata is loaded. */
export interface LoadedMeta {
  statusMessage: string;
  /** The stored response fields as sent on a hit (no Age, Date, Cache-Status). */
  raw: string[];
  policy: Policy;
  /** The policy requests are evaluated against (see PolicyView.evalPolicy). */
  evalPolicy: Policy;
  /** A plain request (no Cache-Control) may be answered without asking the policy again while now < freshUntil. */
  fastOk: boolean;
  mustRevalidate: boolean;
  /** Never served stale (see PolicyView.neverStale). */
  neverStale: boolean;
  /**
   * Epoch ms at which the response's age was zero: its age grows one second per second from
   * there (RFC 9111 §4.2.3), so a hit need not ask the policy (and touch its header objects).
   */
  ageZeroAt: number;
  /** The request headers this entry was stored for (host + Vary-named), for background revalidation. */
  requestHeaders: Record<string, string>;
  /** What its quick answers reuse (core/quick/answer.ts). */
  quick: QuickMemo;
  /** The rule the entry was stored under (src/rules/), named in its hits' Cache-Status and in the UI. Not persisted. */
  rule?: string;
}

/** One stored response: its index record, and what of it is loaded. */
export interface Entry extends IndexRecord {
  /** Null until first used after a restart (read from its metadata file then). */
  meta: LoadedMeta | null;
  /** The body, when the entry is in the memory tier (always, without a disk tier). */
  body: Buffer | null;
  onDisk: boolean;
  /** Where the disk index held it when last touched (-1, 0: not yet; see EntryStore.touchRef). */
  diskId: number;
  diskStamp: number;
}

export function loadMeta(policy: Policy, statusMessage: string, raw: string[], requestHeaders: Record<string, string>): LoadedMeta {
  const { url, mustRevalidate, neverStale, evalPolicy } = viewPolicy(policy);
  return {
    statusMessage,
    raw,
    policy,
    evalPolicy,
    fastOk: evalPolicy.satisfiesWithoutRevalidation({ url, method: 'GET', headers: requestHeaders }),
    mustRevalidate,
    neverStale,
    ageZeroAt: Date.now() - policy.age() * 1000,
    quick: newQuickMemo(),
    requestHeaders,
  };
}

/** The Age field's value at `now` (whole seconds). */
export function ageAt(meta: LoadedMeta, now: number): number {
  return Math.round((now - meta.ageZeroAt) / 1000);
}

/** Seconds of freshness left; negative when stale. */
export function ttlSeconds(entry: Entry): number {
  return Math.round((entry.freshUntil - Date.now()) / 1000);
}

export function isFresh(entry: Entry): boolean {
  return Date.now() < entry.freshUntil;
}
