import * as zlib from 'node:zlib';
import { CorruptEntryError, type CompactEntryMeta } from '../entryMeta';
import { BIT_CONTENT_TYPE, BIT_FAST_OK, BIT_MUST_REVALIDATE, BIT_NEVER_STALE, BIT_PLAIN_KEY, BIT_VARY, FIXED, hasPlainKey, rawOf, writeFixedFields } from './compactMeta';

/**
 * The plain compact form of a response's metadata (packs.ts, FLAG_PLAIN): compactMeta.ts's
 * fields, not deflated, so a read makes no zlib stream object (the one per record of the
 * deflated form was most of its decoding: docs/BENCHMARKS.md, "A million entries", session 10).
 * Kept small without deflate by a static table of common field names and values (codes in one
 * byte, dates and numbers in binary), and by deflating only the policy's JSON text, on its own,
 * with the record's own fields and URL as its dictionary (it repeats them); a fresh hit never
 * inflates it (LoadedMeta keeps it packed until the slow path asks).
 *
 *   0  u8  form (3)          1  u8  bits (BIT_*)      2  u16 status       4  u32 hits
 *   8  f64 size              16 f64 storedAt          24 f64 freshUntil   32 f64 ageZeroAt
 *   40 key (text), url (text, unless the key is `GET <url>`), digest, contentType (if any),
 *      statusMessage, vary (if any; names joined by ','), the stored fields (a count, then a
 *      name and a value each), the policy (deflated, as text)
 * A text is a varint byte length and UTF-8; a name or value (`value`) is a code byte: a table
 * entry, or a literal text, or a number, date or digest in binary (V_*).
 */
const FORM = 3;

/** Value codes besides the table's (1..TABLE.length): a literal text, and values written in binary. */
const V_LITERAL = 0;
const V_NUMBER = 250;
const V_DATE = 251;
const V_MAX_AGE = 252;
const V_PUBLIC_MAX_AGE = 253;
const V_CRC32 = 254;

/**
 * Field names and values that stored responses repeat (both cases of the names: HTTP/1 origins
 * send them as they like, HTTP/2 in lower case). Frozen: records name no table version, so an
 * entry's code is its meaning for good; new entries may only be appended (below 250 in all).
 */
const TABLE: readonly string[] = [
  // names
  'Content-Type', 'Content-Length', 'Cache-Control', 'Date', 'Via', 'ETag', 'Last-Modified', 'Expires', 'Vary',
  'Content-Encoding', 'Accept-Ranges', 'Server', 'Connection', 'Keep-Alive', 'Age', 'Access-Control-Allow-Origin',
  'X-Content-Type-Options', 'Strict-Transport-Security', 'X-Cache', 'X-Served-By', 'X-Timer', 'X-Frame-Options',
  'Content-Security-Policy', 'Referrer-Policy', 'CF-Cache-Status', 'CF-RAY', 'X-Amz-Cf-Id', 'X-Amz-Cf-Pop',
  'x-amz-request-id', 'x-amz-id-2', 'X-GitHub-Request-Id', 'Content-Disposition', 'Timing-Allow-Origin',
  'Cross-Origin-Resource-Policy', 'Alt-Svc', 'Link', 'Pragma', 'Set-Cookie', 'Location', 'Transfer-Encoding',
  'content-type', 'content-length', 'cache-control', 'date', 'via', 'etag', 'last-modified', 'expires', 'vary',
  'content-encoding', 'accept-ranges', 'server', 'connection', 'keep-alive', 'age', 'access-control-allow-origin',
  'x-content-type-options', 'strict-transport-security', 'x-cache', 'x-served-by', 'x-timer', 'x-frame-options',
  'content-security-policy', 'referrer-policy', 'cf-cache-status', 'cf-ray', 'x-amz-cf-id', 'x-amz-cf-pop',
  'x-github-request-id', 'content-disposition', 'timing-allow-origin', 'cross-origin-resource-policy', 'alt-svc',
  'link', 'pragma', 'location', 'transfer-encoding',
  // values
  'application/octet-stream', 'application/json', 'application/json; charset=utf-8', 'application/vnd.npm.install-v1+json',
  'application/vnd.npm.install-v1+json; charset=utf-8', 'application/x-tar', 'application/gzip', 'application/x-gzip',
  'application/zip', 'application/javascript', 'application/javascript; charset=utf-8', 'application/xml',
  'text/html', 'text/html; charset=utf-8', 'text/html; charset=UTF-8', 'text/plain', 'text/plain; charset=utf-8',
  'text/css', 'text/css; charset=utf-8', 'text/javascript', 'text/javascript; charset=utf-8', 'text/xml',
  'image/png', 'image/jpeg', 'image/gif', 'image/svg+xml', 'image/webp', 'image/x-icon', 'font/woff2',
  '1.1 caching-proxy', 'bytes', 'none', 'keep-alive', 'close', 'chunked', 'gzip', 'br', 'deflate', 'identity',
  'Accept-Encoding', 'accept-encoding', 'Origin', 'Accept-Encoding, Origin', 'Accept', 'Authorization', 'Accept-Encoding, Accept',
  'public', 'private', 'no-cache', 'no-store', 'immutable', 'must-revalidate', 'max-age=0', 'max-age=0, must-revalidate',
  'public, max-age=31536000, immutable', 'public, immutable, max-age=31536000', 'max-age=31536000, immutable',
  'private, max-age=0', 'no-cache, no-store, must-revalidate', 'public, must-revalidate, max-age=0',
  '*', 'nosniff', 'DENY', 'SAMEORIGIN', 'HIT', 'MISS', 'EXPIRED', 'REVALIDATED', 'DYNAMIC', 'cross-origin', 'same-origin',
  'max-age=31536000', 'max-age=31536000; includeSubDomains', 'max-age=31536000; includeSubDomains; preload',
  'strict-origin-when-cross-origin', 'no-referrer', 'nginx', 'cloudflare', 'AmazonS3', 'Apache', 'GitHub.com',
  'Windows-Azure-Blob/1.0 Microsoft-HTTPAPI/2.0', 'h3=":443"; ma=86400', 'timeout=5',
  'OK', 'Non-Authoritative Information', 'Partial Content', 'Moved Permanently', 'Found', 'Not Modified',
  'Not Found', 'Gone', 'Temporary Redirect', 'Permanent Redirect', 'No Content',
];
const CODES = new Map<string, number>(TABLE.map((s, i) => [s, i + 1]));
const TABLE_BYTES = TABLE.map((s) => Buffer.from(s, 'latin1'));
if (TABLE.length >= V_NUMBER) throw new Error('plainMeta: the table overlaps the value codes');

/** What the policy's JSON text repeats besides its own fields and URL (frozen like TABLE). */
const POLICY_DICTIONARY = Buffer.from(
  '{"v":1,"t":17,"sh":true,"ch":0.1,"imm":86400000,"icc":false,"st":200,"resh":{"content-type":"application/octet-stream",' +
    '"content-length":"","cache-control":"public, max-age=","etag":"\\"","last-modified":"","expires":"","vary":"accept-encoding",' +
    '"content-encoding":"gzip","server":"","accept-ranges":"bytes","connection":"keep-alive","date":""},"rescc":{"max-age":"",' +
    '"public":true,"immutable":true,"no-cache":true,"must-revalidate":true},"m":"GET","u":"http://","h":"127.0.0.1:","a":true,"reqh":null,"reqcc":{}}',
);

const NUMBER = /^(?:0|[1-9][0-9]{0,14})$/;
const CRC32 = /^crc32:[0-9a-f]{8}$/;
const DAYS = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'];
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
const HEX = '0123456789abcdef';

/** The policy deflated for a record: its fields and URL in the dictionary. */
function policyDictionary(head: string, url: string): Buffer {
  return Buffer.concat([POLICY_DICTIONARY, Buffer.from(head, 'utf8'), Buffer.from(url, 'utf8')]);
}

/** A packed policy (PlainCompactMeta.packedPolicy, as kept by LoadedMeta) back to its JSON text. */
export function unpackPolicy(packed: string, head: string, url: string): string {
  try {
    return zlib.inflateRawSync(Buffer.from(packed, 'latin1'), { dictionary: policyDictionary(head, url) }).toString('utf8');
  } catch {
    // Its record's CRC held, so only a writer's bug gets here.
    throw new CorruptEntryError('stored policy does not inflate');
  }
}

// ---------------------------------------------------------------- writing

class Writer {
  private buf = Buffer.allocUnsafe(1024);
  at = 0;
  private room(n: number): void {
    if (this.at + n <= this.buf.length) return;
    const bigger = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.at + n));
    this.buf.copy(bigger, 0, 0, this.at);
    this.buf = bigger;
  }
  byte(b: number): void {
    this.room(1);
    this.buf[this.at++] = b;
  }
  varint(n: number): void {
    while (n >= 0x80) {
      this.byte((n % 0x80) | 0x80);
      n = Math.floor(n / 0x80);
    }
    this.byte(n);
  }
  u32(n: number): void {
    this.room(4);
    this.buf.writeUInt32LE(n, this.at);
    this.at += 4;
  }
  bytes(b: Buffer): void {
    this.varint(b.length);
    this.room(b.length);
    b.copy(this.buf, this.at);
    this.at += b.length;
  }
  text(s: string): void {
    this.bytes(Buffer.from(s, 'utf8'));
  }
  fixed(n: number): Buffer {
    this.room(n);
    const view = this.buf.subarray(this.at, this.at + n);
    this.at += n;
    return view;
  }
  done(): Buffer {
    return Buffer.from(this.buf.subarray(0, this.at));
  }
  /** A name or value: its table code, or a binary form that reads back as exactly this text, or the text itself. */
  value(s: string): void {
    const code = CODES.get(s);
    if (code !== undefined) return this.byte(code);
    if (NUMBER.test(s) && Number(s) <= Number.MAX_SAFE_INTEGER) {
      this.byte(V_NUMBER);
      return this.varint(Number(s));
    }
    if (s.startsWith('max-age=') && NUMBER.test(s.slice(8))) {
      this.byte(V_MAX_AGE);
      return this.varint(Number(s.slice(8)));
    }
    if (s.startsWith('public, max-age=') && NUMBER.test(s.slice(16))) {
      this.byte(V_PUBLIC_MAX_AGE);
      return this.varint(Number(s.slice(16)));
    }
    if (CRC32.test(s)) {
      this.byte(V_CRC32);
      return this.u32(parseInt(s.slice(6), 16));
    }
    if (s.length === 29 && s.endsWith(' GMT')) {
      const ms = Date.parse(s);
      if (ms >= 0 && ms / 1000 <= 0xffffffff && ms % 1000 === 0 && new Date(ms).toUTCString() === s) {
        this.byte(V_DATE);
        return this.u32(ms / 1000);
      }
    }
    this.byte(V_LITERAL);
    this.text(s);
  }
}

export function encodePlain(m: CompactEntryMeta): Buffer {
  const w = new Writer();
  const plain = hasPlainKey(m);
  writeFixedFields(w.fixed(FIXED), FORM, m, plain);
  w.text(m.key);
  if (!plain) w.text(m.url);
  w.value(m.digest);
  if (m.contentType !== undefined) w.value(m.contentType);
  w.value(m.statusMessage);
  if (m.vary !== null) w.value(m.vary.join(','));
  const lines = rawOf(m.head);
  w.varint(lines.length / 2);
  for (const s of lines) w.value(s);
  w.bytes(zlib.deflateRawSync(Buffer.from(m.policyText, 'utf8'), { dictionary: policyDictionary(m.head, m.url), level: 6 }));
  return w.done();
}

// ---------------------------------------------------------------- reading

/**
 * Where decoded fields are written before they become one string: one buffer, grown when a
 * record needs more, so a read makes one flat string per field and no pieces.
 */
let scratch = Buffer.allocUnsafeSlow(4096);

/** A record's metadata in the plain form, being read (one per decodePlain, not kept). */
class Reader {
  at = FIXED;
  /** Bytes of the field being decoded in `scratch`. */
  out = 0;
  constructor(private readonly buf: Buffer) {}

  private cut(): never {
    throw new CorruptEntryError('metadata cut short');
  }
  byte(): number {
    if (this.at >= this.buf.length) this.cut();
    return this.buf[this.at++];
  }
  varint(): number {
    let n = 0;
    let scale = 1;
    for (;;) {
      const b = this.byte();
      n += (b & 0x7f) * scale;
      if (b < 0x80) return n;
      scale *= 0x80;
      if (scale > 2 ** 56) throw new CorruptEntryError('metadata unreadable');
    }
  }
  u32(): number {
    if (this.at + 4 > this.buf.length) this.cut();
    const n = this.buf.readUInt32LE(this.at);
    this.at += 4;
    return n;
  }
  /** A text's bytes: [start, end) in buf. */
  span(): number {
    const length = this.varint();
    const start = this.at;
    if (start + length > this.buf.length) this.cut();
    this.at = start + length;
    return start;
  }
  text(): string {
    const start = this.span();
    return this.buf.toString('utf8', start, this.at);
  }
  latin1(): string {
    const start = this.span();
    return this.buf.toString('latin1', start, this.at);
  }
  private room(n: number): void {
    if (this.out + n <= scratch.length) return;
    const bigger = Buffer.allocUnsafeSlow(Math.max(scratch.length * 2, this.out + n));
    scratch.copy(bigger, 0, 0, this.out);
    scratch = bigger;
  }
  // Byte by byte: the pieces are a few bytes each, where Buffer's write and copy cost a call into C++ each.
  put(s: string): void {
    this.room(s.length);
    for (let i = 0; i < s.length; i++) scratch[this.out++] = s.charCodeAt(i);
  }
  putBytes(b: Uint8Array, start = 0, end = b.length): void {
    this.room(end - start);
    if (end - start > 64) {
      scratch.set(b.subarray(start, end), this.out);
      this.out += end - start;
    } else for (let i = start; i < end; i++) scratch[this.out++] = b[i];
  }
  putDigits(n: number): void {
    if (n < 10) {
      this.room(1);
      scratch[this.out++] = 48 + n;
    } else this.put(String(n));
  }
  putTwo(n: number): void {
    this.room(2);
    scratch[this.out++] = 48 + Math.floor(n / 10);
    scratch[this.out++] = 48 + (n % 10);
  }
  /** A name or value, appended to scratch. */
  value(): void {
    const code = this.byte();
    if (code >= 1 && code <= TABLE.length) return void this.putBytes(TABLE_BYTES[code - 1]);
    switch (code) {
      case V_LITERAL: {
        const start = this.span();
        return this.putBytes(this.buf, start, this.at);
      }
      case V_NUMBER:
        return this.putDigits(this.varint());
      case V_MAX_AGE:
        this.put('max-age=');
        return this.putDigits(this.varint());
      case V_PUBLIC_MAX_AGE:
        this.put('public, max-age=');
        return this.putDigits(this.varint());
      case V_CRC32: {
        const n = this.u32();
        this.put('crc32:');
        this.room(8);
        for (let shift = 28; shift >= 0; shift -= 4) scratch[this.out++] = HEX.charCodeAt((n >>> shift) & 15);
        return;
      }
      case V_DATE: {
        // The IMF-fixdate it was (checked to read back so when written), without toUTCString's string.
        const d = new Date(this.u32() * 1000);
        this.put(DAYS[d.getUTCDay()]);
        this.put(', ');
        this.putTwo(d.getUTCDate());
        this.put(' ');
        this.put(MONTHS[d.getUTCMonth()]);
        this.put(' ');
        this.putDigits(d.getUTCFullYear());
        this.put(' ');
        this.putTwo(d.getUTCHours());
        this.put(':');
        this.putTwo(d.getUTCMinutes());
        this.put(':');
        this.putTwo(d.getUTCSeconds());
        return this.put(' GMT');
      }
      default:
        throw new CorruptEntryError('metadata unreadable');
    }
  }
  /** A value on its own, as a string (a table entry is the table's own string). */
  valueText(): string {
    const code = this.buf[this.at];
    if (code >= 1 && code <= TABLE.length) {
      this.at++;
      return TABLE[code - 1];
    }
    this.out = 0;
    this.value();
    return scratch.toString('utf8', 0, this.out);
  }
  /** The stored fields' block (`Name: value\r\n` each), as one string. */
  head(): string {
    const lines = this.varint();
    if (lines > this.buf.length) throw new CorruptEntryError('metadata unreadable');
    this.out = 0;
    for (let i = 0; i < lines; i++) {
      this.value();
      this.put(': ');
      this.value();
      this.put('\r\n');
    }
    return scratch.toString('utf8', 0, this.out);
  }
}

/**
 * The plain form's metadata as read: its policy still packed (deflated, kept as a Latin-1
 * string), made JSON text only if someone reads policyText; compactLoaded hands the packed
 * form to LoadedMeta instead. A class for that getter: spreading one ({...meta}) would drop it.
 */
export class PlainCompactMeta implements CompactEntryMeta {
  readonly v = 2;
  private text: string | undefined = undefined;
  constructor(
    readonly key: string,
    readonly hash: string,
    readonly url: string,
    readonly status: number,
    readonly size: number,
    readonly digest: string,
    readonly storedAt: number,
    readonly freshUntil: number,
    readonly hits: number,
    readonly contentType: string | undefined,
    readonly vary: string[] | null,
    readonly statusMessage: string,
    readonly head: string,
    readonly packedPolicy: string,
    readonly fastOk: boolean,
    readonly mustRevalidate: boolean,
    readonly neverStale: boolean,
    readonly ageZeroAt: number,
  ) {}

  get policyText(): string {
    return (this.text ??= unpackPolicy(this.packedPolicy, this.head, this.url));
  }
}

/** The plain form read back; `hash`: the record's (checked by its CRC). Throws CorruptEntryError if it does not parse. */
export function decodePlain(buf: Buffer, hash: string): PlainCompactMeta {
  if (buf.length < FIXED || buf[0] !== FORM) throw new CorruptEntryError('metadata unreadable');
  const bits = buf[1];
  const r = new Reader(buf);
  const key = r.text();
  // A plain key's URL is a slice of it (one string in memory, not two).
  const url = bits & BIT_PLAIN_KEY ? key.slice(4) : r.text();
  const digest = r.valueText();
  const contentType = bits & BIT_CONTENT_TYPE ? r.valueText() : undefined;
  const statusMessage = r.valueText();
  const varyText = bits & BIT_VARY ? r.valueText() : null;
  const vary = varyText === null ? null : varyText === '' ? [] : varyText.split(',');
  const head = r.head();
  const packedPolicy = r.latin1();
  if (r.at !== buf.length) throw new CorruptEntryError('metadata has trailing bytes');
  return new PlainCompactMeta(
    key,
    hash,
    url,
    buf.readUInt16LE(2),
    buf.readDoubleLE(8),
    digest,
    buf.readDoubleLE(16),
    buf.readDoubleLE(24),
    buf.readUInt32LE(4),
    contentType,
    vary,
    statusMessage,
    head,
    packedPolicy,
    (bits & BIT_FAST_OK) !== 0,
    (bits & BIT_MUST_REVALIDATE) !== 0,
    (bits & BIT_NEVER_STALE) !== 0,
    buf.readDoubleLE(32),
  );
}
