import { STATUS_CODES } from 'node:http';
import type { QuickAnswer, QuickResponder } from '../core/exchange';
import { responseHasNoBody } from '../core/forward';
import { hitStatus } from './cacheStatus';
import { ageAt, type Entry, type LoadedMeta } from './entry';
import type { CacheReport } from './report';
import { asksOnlyForStored } from './rules';
import type { CacheSettings } from './settings';
import type { Store } from './store';

/** Up to this body size a quick answer copies the body in behind the head and is sent with one write. */
const QUICK_COPY_MAX = 16 * 1024;
/** Requests within one second after which an entry's quick answer is reused for the rest of that second. */
const QUICK_HOT_REQUESTS = 4;

/** The server's quick path (plain GET/HEAD, no body): a fresh in-memory hit, serialised, or null. */
export function quickResponder(store: Store, report: CacheReport, policyFor: (href: string, headers: Record<string, string>) => CacheSettings['policy']): QuickResponder {
  return (request) => {
    const policy = policyFor(request.href, request.headers);
    if (policy === 'offline' || policy === 'off' || !asksOnlyForStored(request.headers)) return null;
    const entry = store.freshInMemory(request.href, request.headers);
    if (entry === null || responseHasNoBody('GET', entry.status)) return null;
    report.hit(entry);
    return quickAnswer(entry, entry.meta!, entry.body!, request.method === 'HEAD');
  };
}

/**
 * The serialised answer for an entry. Its fixed part (status line, stored fields,
 * Content-Length) is built once per metadata; Age, Cache-Status and Date per request. A small
 * body is copied in behind the head, for one write.
 *
 * An entry asked for QUICK_HOT_REQUESTS times within one second reuses its answer for the
 * rest of that second. Only then: an answer kept any longer than a young-generation cycle is
 * promoted, and with 100,000 entries each asked for now and then, keeping every answer for
 * its second filled the old generation and brought 70 ms collections.
 */
function quickAnswer(entry: Entry, meta: LoadedMeta, body: Buffer, headOnly: boolean): QuickAnswer {
  const now = Date.now();
  const second = Math.floor(now / 1000);
  if (meta.quickSecond === second) {
    if (!headOnly && meta.quick !== undefined) return meta.quick;
    meta.quickAsked++;
  } else {
    meta.quickSecond = second;
    meta.quickAsked = 1;
    meta.quick = undefined;
  }
  const outcome = hitStatus(Math.round((entry.freshUntil - now) / 1000), meta.rule);
  const fixed = (meta.quickFixed ??= quickFixedPart(entry.status, meta, body.length));
  // The stored Date is the origin's; entries stored before it was kept get today's.
  const date = meta.quickDated ? '' : `Date: ${httpDate(second)}\r\n`;
  const perRequest = `Age: ${ageAt(meta, now)}\r\nCache-Status: caching-proxy; ${outcome}\r\n${date}\r\n`;
  const headLength = fixed.length + perRequest.length;
  const copyBody = !headOnly && body.length <= QUICK_COPY_MAX;
  const head = Buffer.allocUnsafe(headLength + (copyBody ? body.length : 0));
  head.write(fixed, 0, 'latin1');
  head.write(perRequest, fixed.length, 'latin1');
  if (copyBody) body.copy(head, headLength);
  const answer: QuickAnswer = { status: entry.status, head, body: headOnly || copyBody ? null : body, bodyLength: headOnly ? 0 : body.length, outcome };
  // Only a copied-in body: the kept answer then holds no buffer the memory tier may let go.
  if (copyBody && meta.quickAsked >= QUICK_HOT_REQUESTS) meta.quick = answer;
  return answer;
}

/** Status line and stored fields of a quick answer, framed by the stored body's length whatever the origin's framing was. */
function quickFixedPart(status: number, meta: LoadedMeta, bodyLength: number): string {
  const lines = [`HTTP/1.1 ${status} ${meta.statusMessage || STATUS_CODES[status] || 'Unknown'}\r\n`];
  const raw = meta.raw;
  meta.quickDated = false;
  for (let i = 0; i < raw.length; i += 2) {
    const lower = raw[i].toLowerCase();
    if (lower === 'date') meta.quickDated = true;
    if (lower !== 'content-length' && lower !== 'transfer-encoding') lines.push(`${raw[i]}: ${raw[i + 1]}\r\n`);
  }
  lines.push(`Content-Length: ${bodyLength}\r\n`);
  // join() gives one flat string (a += chain would be a rope each answer walks).
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
