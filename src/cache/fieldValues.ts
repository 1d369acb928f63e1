import { headerObject } from './headers';

/**
 * Response field values as the cache must read them (RFC 9111 §5), before http-cache-semantics,
 * which parses leniently, sees them: strict HTTP-dates, Age, directive names in lower case.
 */

/** An Expires no HTTP-date parser should accept: the policy sees a date long past instead (RFC 9111 §5.3: "already expired"). */
const LONG_AGO = 'Thu, 01 Jan 1970 00:00:00 GMT';

/**
 * A response's fields as the policy must read them: directive names in lower case (they are
 * case-insensitive, §5.2), an invalid Expires as expired (§5.3), an invalid Age ignored (§5.1).
 */
export function normalisedResponse(headers: Record<string, string | string[]>): Record<string, string | string[]> {
  let out = headers;
  const set = (name: string, value: string | undefined) => {
    if (out === headers) out = { ...headers };
    if (value === undefined) delete out[name];
    else out[name] = value;
  };
  for (const name of ['cache-control', 'pragma']) {
    const value = headers[name];
    if (typeof value === 'string') {
      const lower = lowerDirectiveNames(value);
      if (lower !== value) set(name, lower);
    }
  }
  const expires = headers.expires;
  if (typeof expires === 'string' && parseHttpDate(expires) === null) set('expires', LONG_AGO);
  const age = headers.age;
  if (typeof age === 'string') {
    // A list: the first member counts (§5.1).
    const first = age.split(',')[0].trim();
    if (!/^\d+$/.test(first)) set('age', undefined);
    else if (first !== age) set('age', first);
  }
  return out;
}

/** An origin response's fields (raw [name, value, ...]) as the policy must read them. */
export function policyResponseHeaders(raw: string[]): Record<string, string | string[]> {
  return normalisedResponse(headerObject(raw));
}

/** Directive names in lower case (RFC 9111 §5.2: they are case-insensitive); values as they are. */
export function lowerDirectiveNames(value: string): string {
  if (!/[A-Z]/.test(value)) return value;
  return value
    .split(',')
    .map((part) => {
      const eq = part.indexOf('=');
      return eq < 0 ? part.toLowerCase() : part.slice(0, eq).toLowerCase() + part.slice(eq);
    })
    .join(',');
}

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
const IMF_FIXDATE = /^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), (\d{2}) (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) (\d{4}) (\d{2}):(\d{2}):(\d{2}) GMT$/;
const RFC850_DATE = /^(Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday), (\d{2})-(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)-(\d{2}) (\d{2}):(\d{2}):(\d{2}) GMT$/;
const ASCTIME_DATE = /^(Mon|Tue|Wed|Thu|Fri|Sat|Sun) (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) ( \d|\d{2}) (\d{2}):(\d{2}):(\d{2}) (\d{4})$/;

/** Epoch ms of an HTTP-date in one of the three forms RFC 9110 §5.6.7 defines, or null: nothing lenient. */
export function parseHttpDate(value: string): number | null {
  let m = IMF_FIXDATE.exec(value);
  if (m) return utc(Number(m[4]), m[3], Number(m[2]), m[5], m[6], m[7]);
  m = RFC850_DATE.exec(value);
  if (m) {
    // Two-digit years: RFC 9110 says more than 50 years in the future is the past century.
    let year = 2000 + Number(m[4]);
    if (year > new Date().getUTCFullYear() + 50) year -= 100;
    return utc(year, m[3], Number(m[2]), m[5], m[6], m[7]);
  }
  m = ASCTIME_DATE.exec(value);
  if (m) return utc(Number(m[7]), m[2], Number(m[3].trim()), m[4], m[5], m[6]);
  return null;
}

function utc(year: number, month: string, day: number, h: string, min: string, sec: string): number | null {
  const hours = Number(h);
  const minutes = Number(min);
  const seconds = Number(sec);
  if (day < 1 || day > 31 || hours > 23 || minutes > 59 || seconds > 60) return null;
  const ms = Date.UTC(year, MONTHS.indexOf(month), day, hours, minutes, Math.min(seconds, 59));
  // 31 Feb and the like roll over into the next month: not a date.
  return new Date(ms).getUTCDate() === day ? ms : null;
}
