import type { QuickMemo } from '../core/quick/answer';
import type { QuickAnswer } from '../core/quick/lane';
import type { IndexRecord } from './entryMeta';
import { headBlock, rawOf } from './store/compactMeta';
import { unpackPolicy } from './store/plainMeta';
import { restorePolicy, storedRequestHeaders, storePolicy, viewPolicy, type Policy, type StoredPolicy } from './semantics';

/** Where a LoadedMeta's fields and policy come from: given (a response just stored or revalidated, a JSON record), or stored text parsed when first asked for. */
export interface MetaSource {
  raw?: string[];
  /** The fields as one block (compactMeta.ts headBlock), when `raw` is not given. */
  head?: string;
  policy?: Policy;
  /** The policy's toObject() as JSON, when `policy` is not given. */
  policyText?: string;
  /** Or the same as a plain record packs it (store/plainMeta.ts), inflated when first asked for; with the response's `url` (and `head`), its dictionary. */
  packedPolicy?: string;
  url?: string;
  requestHeaders?: Record<string, string>;
}

/**
 * What the hot path needs of an entry once its metadata is loaded. A fresh hit reads only
 * statusMessage, head, fastOk, ageZeroAt and the quick memo's fields: an entry read from a compact record
 * holds its fields as one string and its policy as JSON text, and the two policy objects, the
 * field list and the request headers are built the first time the slow path asks (revalidation,
 * a request with its own Cache-Control, conditional requests, the UI).
 */
export class LoadedMeta implements QuickMemo {
  // What its quick answers reuse (core/quick/answer.ts), held here rather than in an object of
  // their own: one memory read fewer on every hit, which counts when entries are many.
  fixed: string | undefined = undefined;
  dated = false;
  answer: QuickAnswer | undefined = undefined;
  hotHead: Buffer | undefined = undefined;
  outcome = '';
  second = -1;
  asked = 0;
  /** The rule the entry was stored under (src/rules/), named in its hits' Cache-Status and in the UI. Not persisted. */
  rule?: string = undefined;
  private rawList: string[] | undefined;
  private headText: string | undefined;
  private built: Policy | undefined;
  private text: string | undefined;
  private packed: string | undefined;
  private url: string | undefined;
  private evaluated: Policy | undefined;
  private storedFor: Record<string, string> | undefined;

  constructor(
    readonly statusMessage: string,
    /** A plain request (no Cache-Control) may be answered without asking the policy again while now < freshUntil. */
    readonly fastOk: boolean,
    readonly mustRevalidate: boolean,
    /** Never served stale (see PolicyView.neverStale). */
    readonly neverStale: boolean,
    /**
     * Epoch ms at which the response's age was zero: its age grows one second per second from
     * there (RFC 9111 §4.2.3), so a hit need not ask the policy (and touch its header objects).
     */
    readonly ageZeroAt: number,
    from: MetaSource,
  ) {
    this.rawList = from.raw;
    this.headText = from.raw === undefined ? from.head : undefined;
    this.built = from.policy;
    this.text = from.policy === undefined ? from.policyText : undefined;
    this.packed = from.policy === undefined && from.policyText === undefined ? from.packedPolicy : undefined;
    this.url = this.packed !== undefined ? from.url : undefined;
    this.storedFor = from.requestHeaders;
  }

  /** The stored response fields as sent on a hit (no Age, Date, Cache-Status). */
  get raw(): string[] {
    return (this.rawList ??= rawOf(this.headText ?? ''));
  }

  /** The same fields as one block, `Name: value\r\n` each (what a quick answer's head is made of). */
  get head(): string {
    return this.headText ?? headBlock(this.rawList ?? []);
  }

  get policy(): Policy {
    if (this.built === undefined) this.parse();
    return this.built!;
  }

  /** The policy's stored form, as JSON text. */
  get policyText(): string {
    if (this.text === undefined && this.packed !== undefined && this.built === undefined) this.unpack();
    return this.text ?? JSON.stringify(storePolicy(this.policy));
  }

  /** The policy requests are evaluated against (see PolicyView.evalPolicy). */
  get evalPolicy(): Policy {
    return (this.evaluated ??= viewPolicy(this.policy).evalPolicy);
  }

  /** The request headers this entry was stored for (host + Vary-named), for background revalidation. */
  get requestHeaders(): Record<string, string> {
    if (this.storedFor === undefined) this.parse();
    return this.storedFor!;
  }

  private unpack(): void {
    this.text = unpackPolicy(this.packed!, this.head, this.url ?? '');
    this.packed = this.url = undefined;
  }

  private parse(): void {
    if (this.text === undefined && this.packed !== undefined) this.unpack();
    const stored = this.text !== undefined ? (JSON.parse(this.text) as StoredPolicy) : storePolicy(this.built!);
    this.built ??= restorePolicy(stored);
    this.storedFor ??= storedRequestHeaders(stored);
    this.text = undefined;
  }
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

/** The metadata of a response whose policy is built: what a hit needs is worked out from it now. */
export function loadMeta(policy: Policy, statusMessage: string, raw: string[], requestHeaders: Record<string, string>): LoadedMeta {
  const { url, mustRevalidate, neverStale, evalPolicy } = viewPolicy(policy);
  const fastOk = evalPolicy.satisfiesWithoutRevalidation({ url, method: 'GET', headers: requestHeaders });
  const meta = new LoadedMeta(statusMessage, fastOk, mustRevalidate, neverStale, Date.now() - policy.age() * 1000, { raw, policy, requestHeaders });
  return meta;
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
