import type { CompactEntryMeta, EntryMeta, IndexRecord } from './entryMeta';
import { loadMeta, LoadedMeta, type Entry } from './entry';
import { keptBody } from './store/records';
import { fitsHeadBlock, rawOf } from './store/compactMeta';
import { freshUntil, restorePolicy, storedRequestHeaders, storePolicy } from './semantics';

/**
 * An entry's metadata as the disk tier stores it: the compact form (v2, what a hit needs worked
 * out now, with the policy as JSON text), or the JSON form for fields the compact form cannot
 * hold (a line break in a value).
 */
export function storedMeta(record: IndexRecord, meta: LoadedMeta): EntryMeta {
  const r = toRecord(record);
  if (!fitsHeadBlock(meta.raw)) return { ...r, v: 1, statusMessage: meta.statusMessage, raw: meta.raw, policy: storePolicy(meta.policy) };
  return {
    ...r,
    v: 2,
    statusMessage: meta.statusMessage,
    head: meta.head,
    policyText: meta.policyText,
    fastOk: meta.fastOk,
    mustRevalidate: meta.mustRevalidate,
    neverStale: meta.neverStale,
    ageZeroAt: meta.ageZeroAt,
  };
}

/** A compact record's metadata as loaded: nothing to build, the policy stays text until the slow path asks for it. */
export function compactLoaded(meta: CompactEntryMeta): LoadedMeta {
  const from = meta.packedPolicy !== undefined ? { head: meta.head, packedPolicy: meta.packedPolicy, url: meta.url } : { head: meta.head, policyText: meta.policyText };
  return new LoadedMeta(meta.statusMessage, meta.fastOk, meta.mustRevalidate, meta.neverStale, meta.ageZeroAt, from);
}

/** A record read from disk, as an entry in memory; `body`: the body to keep with it, if any. */
export function entryFromStored(meta: EntryMeta, body: Buffer | null): Entry {
  const kept = body ? keptBody(body) : null;
  if (meta.v === 2) {
    // freshUntil as stored: nothing to work out, no policy built. (Fields listed, not toRecord's
    // object spread: this runs once per cold hit.)
    return {
      key: meta.key,
      hash: meta.hash,
      url: meta.url,
      status: meta.status,
      size: meta.size,
      digest: meta.digest,
      storedAt: meta.storedAt,
      freshUntil: meta.freshUntil,
      hits: meta.hits,
      contentType: meta.contentType,
      vary: meta.vary,
      meta: compactLoaded(meta),
      body: kept,
      onDisk: true,
      diskId: -1,
      diskStamp: 0,
    };
  }
  // The JSON form (written before the compact one): its policy built, as it always was.
  const policy = restorePolicy(meta.policy);
  return {
    ...toRecord(meta),
    freshUntil: freshUntil(policy),
    meta: loadMeta(policy, meta.statusMessage, meta.raw, storedRequestHeaders(meta.policy)),
    body: kept,
    onDisk: true,
    diskId: -1,
    diskStamp: 0,
  };
}

/** What the UI's list needs of an entry not in memory, without building its policy. */
export function summaryEntry(meta: EntryMeta): Entry {
  const raw = meta.v === 2 ? rawOf(meta.head) : meta.raw;
  return { ...toRecord(meta), meta: { raw } as unknown as LoadedMeta, body: null, onDisk: true, diskId: -1, diskStamp: 0 };
}

export function toRecord(m: IndexRecord): IndexRecord {
  return {
    key: m.key,
    hash: m.hash,
    url: m.url,
    status: m.status,
    size: m.size,
    digest: m.digest,
    storedAt: m.storedAt,
    freshUntil: m.freshUntil,
    hits: m.hits,
    contentType: m.contentType,
    vary: m.vary,
  };
}
