import { STATUS_CODES } from 'node:http';
import type { QuickAnswer } from './lane';

/** Up to this body size a quick answer copies the body in behind the head and is sent with one write. */
const QUICK_COPY_MAX = 16 * 1024;
/** Requests within one second after which a response's quick answer is reused for the rest of that second. */
const QUICK_HOT_REQUESTS = 4;

/**
 * What is kept per stored response for its quick answers: the fixed part of the head (status
 * line, stored fields, Content-Length), built once; and while the response is hot, the whole
 * answer of the current second (a small body), or its head (a body written after the head).
 * The cache keeps these fields on an entry's loaded metadata (cache/entry.ts), which a 304's update replaces.
 */
export interface QuickMemo {
  fixed: string | undefined;
  /** The stored fields carry a Date (set with `fixed`). */
  dated: boolean;
  /** The answer reused while hot, and how often it was asked for in `second` (Age, ttl and Date change by the second). */
  answer: QuickAnswer | undefined;
  /** For a body not copied in: the head reused while hot (`second`), and its outcome. */
  hotHead: Buffer | undefined;
  outcome: string;
  second: number;
  asked: number;
}

/** A stored response's status message and fields, read once per memo (fixedPart). */
export interface QuickFields {
  readonly statusMessage: string;
  /** The stored fields as sent on a hit, `Name: value\r\n` each (no Age, Date, Cache-Status; framing fields are replaced). */
  readonly head: string;
}

/** A stored response as its quick answer needs it. */
export interface StoredForQuick {
  status: number;
  fields: QuickFields;
  body: Buffer;
}

/**
 * The answer of this second, if the response is hot (asked for QUICK_HOT_REQUESTS times within
 * it), else null; counts the request either way. Only then: an answer kept any longer than a
 * young-generation cycle is promoted, and with 100,000 entries each asked for now and then,
 * keeping every answer for its second filled the old generation and brought 70 ms collections.
 * `status` and `body`: the stored response's (a kept head is written with the body; the memo
 * holds no body, which the memory tier may let go).
 */
export function reusedAnswer(memo: QuickMemo, now: number, headOnly: boolean, status: number, body: Buffer): QuickAnswer | null {
  const second = Math.floor(now / 1000);
  if (memo.second === second) {
    if (!headOnly) {
      if (memo.answer !== undefined) return memo.answer;
      if (memo.hotHead !== undefined) return { status, head: memo.hotHead, body, bodyLength: body.length, outcome: memo.outcome };
    }
    memo.asked++;
  } else {
    memo.second = second;
    memo.asked = 1;
    memo.answer = undefined;
    memo.hotHead = undefined;
  }
  return null;
}

/**
 * The serialised answer for a stored response (call reusedAnswer first, with the same `now`):
 * the fixed part from the memo, then Age, Cache-Status and Date; a small body is copied in
 * behind the head, for one write.
 */
export function serialisedAnswer(memo: QuickMemo, stored: StoredForQuick, headOnly: boolean, now: number, age: number, outcome: string): QuickAnswer {
  const body = stored.body;
  const fixed = (memo.fixed ??= fixedPart(memo, stored));
  // The stored Date is the origin's; entries stored before it was kept get today's.
  const date = memo.dated ? '' : `Date: ${httpDate(Math.floor(now / 1000))}\r\n`;
  const perRequest = `Age: ${age}\r\nCache-Status: caching-proxy; ${outcome}\r\n${date}\r\n`;
  const headLength = fixed.length + perRequest.length;
  const copyBody = !headOnly && body.length <= QUICK_COPY_MAX;
  const keep = memo.asked >= QUICK_HOT_REQUESTS && !headOnly;
  const size = headLength + (copyBody ? body.length : 0);
  // A kept answer lives as long as its entry is not asked again: cut from Node's shared pool, it would pin a whole 8 KiB slab.
  const head = keep ? Buffer.allocUnsafeSlow(size) : Buffer.allocUnsafe(size);
  head.write(fixed, 0, 'latin1');
  head.write(perRequest, fixed.length, 'latin1');
  if (copyBody) body.copy(head, headLength);
  const answer: QuickAnswer = { status: stored.status, head, body: headOnly || copyBody ? null : body, bodyLength: headOnly ? 0 : body.length, outcome };
  if (keep) {
    // A copied-in body is the answer's own; a larger one is the entry's, so only the head is kept.
    if (copyBody) memo.answer = answer;
    else {
      memo.hotHead = head;
      memo.outcome = outcome;
    }
  }
  return answer;
}

/** Status line and stored fields of a quick answer, framed by the stored body's length whatever the origin's framing was. */
function fixedPart(memo: QuickMemo, stored: StoredForQuick): string {
  const statusLine = `HTTP/1.1 ${stored.status} ${stored.fields.statusMessage || STATUS_CODES[stored.status] || 'Unknown'}\r\n`;
  const head = stored.fields.head;
  // join() gives one flat string (a += chain would be a rope each answer walks).
  return [statusLine, withoutFraming(memo, head), `Content-Length: ${stored.body.length}\r\n`].join('');
}

const FRAMING = ['content-length:', 'transfer-encoding:'];

/** Where a field named by `prefix` (lower case, with its colon) starts in a lower-cased block, or -1. */
function lineStart(lower: string, prefix: string): number {
  if (lower.startsWith(prefix)) return 0;
  const at = lower.indexOf('\r\n' + prefix);
  return at < 0 ? -1 : at + 2;
}

/** The block without its framing fields; notes in the memo whether it has a Date. */
function withoutFraming(memo: QuickMemo, head: string): string {
  let lower = head.toLowerCase();
  if (lower.length !== head.length) return withoutFramingByLine(memo, head);
  memo.dated = lineStart(lower, 'date:') >= 0;
  let out = head;
  for (const name of FRAMING) {
    for (let at = lineStart(lower, name); at >= 0; at = lineStart(lower, name)) {
      const end = lower.indexOf('\r\n', at);
      const cut = end < 0 ? lower.length : end + 2;
      out = out.slice(0, at) + out.slice(cut);
      lower = lower.slice(0, at) + lower.slice(cut);
    }
  }
  return out;
}

/** withoutFraming, a line at a time (a block whose lower case is not as long: characters beyond Latin-1). */
function withoutFramingByLine(memo: QuickMemo, head: string): string {
  const lines: string[] = [];
  memo.dated = false;
  let at = 0;
  while (at < head.length) {
    let end = head.indexOf('\r\n', at);
    if (end < 0) end = head.length - 2;
    const colon = head.indexOf(':', at);
    const lower = head.slice(at, colon < 0 || colon > end ? end : colon).toLowerCase();
    if (lower === 'date') memo.dated = true;
    if (lower !== 'content-length' && lower !== 'transfer-encoding') lines.push(head.slice(at, end + 2));
    at = end + 2;
  }
  return lines.join('');
}

let dateSecond = -1;
let dateText = '';
/** The IMF-fixdate of an epoch second, remembered for the current second. */
function httpDate(second: number): string {
  if (second !== dateSecond) {
    dateSecond = second;
    dateText = new Date(second * 1000).toUTCString();
  }
  return dateText;
}
