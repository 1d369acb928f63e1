import type { EntryMeta } from '../entryMeta';
import { decodeCompact, encodeCompact } from './compactMeta';
import { decodePlain, encodePlain } from './plainMeta';
import { CorruptRecordError, decodeRecord, encodeRecord, type DecodedRecord } from './packs';

/** A record's metadata, in whichever form it was written; throws if it does not parse. */
export function metaOf(decoded: DecodedRecord): EntryMeta {
  if (decoded.plain) return decodePlain(decoded.meta, decoded.hash);
  return decoded.compact ? decodeCompact(decoded.meta, decoded.hash) : (JSON.parse(decoded.meta.toString('utf8')) as EntryMeta);
}

/**
 * A record read back for `hash`: decoded, its metadata parsed and matched to the record (hash,
 * inline body's size). Damage throws CorruptRecordError saying what is wrong, as a short read
 * does; the body is a view into `bytes`.
 */
export function checkedRecord(bytes: Buffer, hash: string): { meta: EntryMeta; body: Buffer | null } {
  const decoded = decodeRecord(bytes, hash);
  let meta: EntryMeta;
  try {
    meta = metaOf(decoded);
  } catch {
    throw new CorruptRecordError('metadata unreadable');
  }
  if (meta.hash !== hash || (decoded.body !== null && decoded.body.length !== meta.size)) throw new CorruptRecordError('metadata does not match its record');
  return { meta, body: decoded.body };
}

/**
 * A record for metadata: the plain form for a response's (v2; records of the deflated compact
 * form, flag 4, are read and rewritten plain by their next store or 304), JSON for the rest
 * (v1, vary markers).
 */
export function recordOf(meta: EntryMeta, inline: Buffer | null): Buffer {
  if (meta.v !== 2) return encodeRecord(meta.hash, JSON.stringify(meta), inline);
  if (recordForms.compact === 'deflated') return encodeRecord(meta.hash, encodeCompact(meta), inline);
  return encodeRecord(meta.hash, encodePlain(meta), inline, true);
}

/** The form a response's record is written in: the plain one, or (tests write stores of session 9) the deflated compact one. */
export const recordForms: { compact: 'plain' | 'deflated' } = { compact: 'plain' };

/**
 * A body kept in memory, in a buffer of its own: a view into a record read, or a copy from
 * Node's shared 8 KiB pool, would pin a whole slab among short-lived ones (with 13,000 small
 * bodies kept, RSS 304 MB instead of 231).
 */
export function ownCopy(body: Buffer): Buffer {
  const copy = Buffer.allocUnsafeSlow(body.length);
  body.copy(copy);
  return copy;
}

/** A body to keep in memory: itself when it is the whole of its memory (a file read, a body already copied), else ownCopy. */
export function keptBody(body: Buffer): Buffer {
  return body.byteOffset === 0 && body.buffer.byteLength === body.byteLength ? body : ownCopy(body);
}

/** A body that arrived in chunks, put together in a buffer of its own (Buffer.concat cuts anything under 4 KiB from the pool). */
export function ownedBody(chunks: Buffer[], size: number): Buffer {
  const body = Buffer.allocUnsafeSlow(size);
  let at = 0;
  for (const chunk of chunks) at += chunk.copy(body, at);
  return body;
}
