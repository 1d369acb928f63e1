import { CorruptEntryError, type CompactEntryMeta } from '../entryMeta';

/**
 * The compact form of a response's metadata in a record (packs.ts, FLAG_COMPACT): fixed binary
 * fields, then strings (a u32 byte length and UTF-8 each), deflated like the JSON form. Reading
 * it makes a dozen strings and one object, where the JSON form made some sixty objects and
 * strings (the policy's header and directive maps among them) and a load then built two policy
 * objects from them (docs/BENCHMARKS.md, "A million entries", session 9).
 *
 *   0  u8  form (2)          1  u8  bits (BIT_*)      2  u16 status       4  u32 hits
 *   8  f64 size              16 f64 storedAt          24 f64 freshUntil   32 f64 ageZeroAt
 *   40 strings: key, url (unless the key is `GET <url>`), digest, contentType (if any),
 *      statusMessage, vary (if any; names joined by ','), head, policyText
 */
const FORM = 2;
/** The fixed fields' bytes, the same in the plain form (plainMeta.ts), which shares their layout and bits. */
export const FIXED = 40;
export const BIT_FAST_OK = 1;
export const BIT_MUST_REVALIDATE = 2;
export const BIT_NEVER_STALE = 4;
export const BIT_PLAIN_KEY = 8;
export const BIT_CONTENT_TYPE = 16;
export const BIT_VARY = 32;

/** Whether a response's key is `GET <url>`, so the form holds no second copy of the URL. */
export function hasPlainKey(m: CompactEntryMeta): boolean {
  return m.key === 'GET ' + m.url;
}

/** Writes the fixed fields (the layout above) into the first FIXED bytes of buf, `form` first. */
export function writeFixedFields(buf: Buffer, form: number, m: CompactEntryMeta, plainKey: boolean): void {
  buf.writeUInt8(form, 0);
  buf.writeUInt8(
    (m.fastOk ? BIT_FAST_OK : 0) |
      (m.mustRevalidate ? BIT_MUST_REVALIDATE : 0) |
      (m.neverStale ? BIT_NEVER_STALE : 0) |
      (plainKey ? BIT_PLAIN_KEY : 0) |
      (m.contentType !== undefined ? BIT_CONTENT_TYPE : 0) |
      (m.vary !== null ? BIT_VARY : 0),
    1,
  );
  buf.writeUInt16LE(m.status, 2);
  buf.writeUInt32LE(Math.min(m.hits, 0xffffffff), 4);
  buf.writeDoubleLE(m.size, 8);
  buf.writeDoubleLE(m.storedAt, 16);
  buf.writeDoubleLE(m.freshUntil, 24);
  buf.writeDoubleLE(m.ageZeroAt, 32);
}

/** Whether the compact form holds these fields exactly (a value with a line break, a name with a colon: the JSON form). */
export function fitsHeadBlock(raw: string[]): boolean {
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i];
    const value = raw[i + 1];
    if (name === '' || /[:\r\n]/.test(name) || /[\r\n]/.test(value)) return false;
  }
  return true;
}

/** Stored fields [name, value, ...] as one block, `Name: value\r\n` each. */
export function headBlock(raw: string[]): string {
  const lines: string[] = [];
  for (let i = 0; i < raw.length; i += 2) lines.push(`${raw[i]}: ${raw[i + 1]}\r\n`);
  // join() gives one flat string (a += chain is a rope, flattened again by its first reader).
  return lines.join('');
}

/** headBlock back to [name, value, ...]. */
export function rawOf(head: string): string[] {
  const out: string[] = [];
  let at = 0;
  while (at < head.length) {
    const end = head.indexOf('\r\n', at);
    const colon = head.indexOf(': ', at);
    if (end < 0 || colon < 0 || colon > end) throw new CorruptEntryError('stored fields unreadable');
    out.push(head.slice(at, colon), head.slice(colon + 2, end));
    at = end + 2;
  }
  return out;
}

export function encodeCompact(m: CompactEntryMeta): Buffer {
  const plain = hasPlainKey(m);
  const strings: string[] = [];
  strings.push(m.key);
  if (!plain) strings.push(m.url);
  strings.push(m.digest);
  if (m.contentType !== undefined) strings.push(m.contentType);
  strings.push(m.statusMessage);
  if (m.vary !== null) strings.push(m.vary.join(','));
  strings.push(m.head, m.policyText);
  const bytes = strings.map((s) => Buffer.from(s, 'utf8'));
  let total = FIXED;
  for (const b of bytes) total += 4 + b.length;
  const buf = Buffer.alloc(total);
  writeFixedFields(buf, FORM, m, plain);
  let at = FIXED;
  for (const b of bytes) {
    buf.writeUInt32LE(b.length, at);
    b.copy(buf, at + 4);
    at += 4 + b.length;
  }
  return buf;
}

/** The compact form read back; `hash`: the record's (checked by its CRC). Throws CorruptEntryError if it does not parse. */
export function decodeCompact(buf: Buffer, hash: string): CompactEntryMeta {
  if (buf.length < FIXED || buf[0] !== FORM) throw new CorruptEntryError('metadata unreadable');
  const bits = buf[1];
  let at = FIXED;
  const next = (): string => {
    if (at + 4 > buf.length) throw new CorruptEntryError('metadata cut short');
    const length = buf.readUInt32LE(at);
    const end = at + 4 + length;
    if (end > buf.length) throw new CorruptEntryError('metadata cut short');
    const s = buf.toString('utf8', at + 4, end);
    at = end;
    return s;
  };
  const key = next();
  // A plain key's URL is a slice of it (one string in memory, not two).
  const url = bits & BIT_PLAIN_KEY ? key.slice(4) : next();
  const digest = next();
  const contentType = bits & BIT_CONTENT_TYPE ? next() : undefined;
  const statusMessage = next();
  const varyText = bits & BIT_VARY ? next() : null;
  const vary = varyText === null ? null : varyText === '' ? [] : varyText.split(',');
  const head = next();
  const policyText = next();
  if (at !== buf.length) throw new CorruptEntryError('metadata has trailing bytes');
  return {
    v: 2,
    key,
    hash,
    url,
    status: buf.readUInt16LE(2),
    size: buf.readDoubleLE(8),
    digest,
    storedAt: buf.readDoubleLE(16),
    freshUntil: buf.readDoubleLE(24),
    hits: buf.readUInt32LE(4),
    contentType,
    vary,
    statusMessage,
    head,
    policyText,
    fastOk: (bits & BIT_FAST_OK) !== 0,
    mustRevalidate: (bits & BIT_MUST_REVALIDATE) !== 0,
    neverStale: (bits & BIT_NEVER_STALE) !== 0,
    ageZeroAt: buf.readDoubleLE(32),
  };
}
