import type { EntryMeta, IndexRecord } from './entryMeta';
import { loadMeta, type Entry, type LoadedMeta } from './entry';
import { ownCopy } from './store/entryStore';
import { freshUntil, restorePolicy, storedRequestHeaders, storePolicy } from './semantics';

/** An entry's metadata as the disk tier stores it. */
export function storedMeta(record: IndexRecord, statusMessage: string, raw: string[], policy: LoadedMeta['policy']): EntryMeta {
  return { ...record, v: 1, statusMessage, raw, policy: storePolicy(policy) };
}

/** A record read from disk, as an entry in memory; `body`: the body to keep with it, if any (`owned`: already a buffer of its own). */
export function entryFromStored(meta: EntryMeta, body: Buffer | null, owned = false): Entry {
  const policy = restorePolicy(meta.policy);
  return {
    ...toRecord(meta),
    freshUntil: freshUntil(policy),
    meta: loadMeta(policy, meta.statusMessage, meta.raw, storedRequestHeaders(meta.policy)),
    body: body ? (owned ? body : ownCopy(body)) : null,
    onDisk: true,
    diskId: -1,
    diskStamp: 0,
  };
}

/** What the UI's list needs of an entry not in memory, without building its policy. */
export function summaryEntry(meta: EntryMeta): Entry {
  return { ...toRecord(meta), meta: { raw: meta.raw } as LoadedMeta, body: null, onDisk: true, diskId: -1, diskStamp: 0 };
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
