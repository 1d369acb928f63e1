/**
 * Rules: per-URL-pattern cache settings and traffic shaping. This file turns what a user wrote
 * (config file, settings.json) into validated, JSON-serialisable RuleSpecs; matching lives in
 * ruleSet.ts, the presets in presets.ts. No dependency on the cache or the server.
 */

/** What a rule may set the cache policy to: the global policies, plus `immutable` for versioned artifacts. */
export type RulePolicyName = 'standard' | 'private' | 'always' | 'offline' | 'off' | 'immutable';
export const RULE_POLICIES: readonly RulePolicyName[] = ['standard', 'private', 'always', 'offline', 'off', 'immutable'];

/** Lifetime of an `immutable` rule that names none. */
export const IMMUTABLE_DEFAULT_TTL = 365 * 86_400;

/**
 * One validated rule. Plain JSON (it crosses the IPC channel inside ProxyConfig) in a form that
 * validates again as it is: a resolved config can be resolved anew.
 */
export interface RuleSpec {
  /** Shown in Cache-Status, events and the Cached URLs view: the user's `name`, `rules[i]`, or `preset:part`. */
  name: string;
  /** `[scheme://]host[:port][/path-glob]`, as written. */
  match: string;
  /** Upper-case methods; absent: any method. */
  method?: string[];
  /** Lower-case request header name -> glob its value must match (case-insensitive). */
  headers?: Record<string, string>;
  policy?: RulePolicyName;
  /** Seconds. */
  ttl?: number;
  admitAfter?: number;
  maxObjectSizeMB?: number;
  serveStaleIfOffline?: boolean;
  /** Added before the answer, in ms, uniformly from min to max. */
  delay?: { min: number; max: number };
  /** The proxy answers `status` itself on this share (0..1) of matching requests. */
  fail?: { status: number; rate: number };
}

export const RULE_FIELDS = [
  'name', 'match', 'method', 'headers', 'policy', 'ttl', 'admitAfter', 'maxObjectSizeMB', 'serveStaleIfOffline', 'delay', 'fail',
] as const;

const MAX_TTL = 10 * 365 * 86_400;
const MAX_DELAY_MS = 600_000;
const UNITS: Record<string, number> = { ms: 0.001, s: 1, m: 60, h: 3600, d: 86_400 };
const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

/**
 * A duration in seconds: a number of seconds, or a string of number+unit parts with units
 * `ms`, `s`, `m`, `h`, `d` (`90`, `"30s"`, `"10m"`, `"1h30m"`, `"365d"`). Returns a problem text instead when invalid.
 */
export function parseDuration(value: unknown): number | { problem: string } {
  const expected = { problem: 'expected a duration: seconds as a number, or a string such as "30s", "10m", "12h", "365d", "1h30m"' };
  if (typeof value === 'number') return Number.isFinite(value) && value >= 0 ? value : expected;
  if (typeof value !== 'string') return expected;
  const text = value.trim().toLowerCase();
  if (/^\d+(\.\d+)?$/.test(text)) return Number(text);
  const part = /(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)/y;
  let seconds = 0;
  let at = 0;
  while (at < text.length) {
    part.lastIndex = at;
    const m = part.exec(text);
    if (!m) return expected;
    seconds += Number(m[1]) * UNITS[m[2]];
    at = part.lastIndex;
    while (text[at] === ' ') at++;
  }
  return text.length ? seconds : expected;
}

function isObject(x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}

/**
 * Validates a `rules` list. Every problem names the rule (`rules[2]`, and its name when it has
 * one), the field and what is wrong; a rule with problems is left out of `rules`.
 */
export function parseRules(input: unknown, where = 'rules'): { rules: RuleSpec[]; problems: string[] } {
  const problems: string[] = [];
  if (input === undefined || input === null) return { rules: [], problems };
  if (!Array.isArray(input)) {
    return { rules: [], problems: [`${where}: expected a list of rules such as [{ "match": "*.example.org/pool/**/*.deb", "policy": "immutable" }]`] };
  }
  const rules: RuleSpec[] = [];
  const names = new Map<string, number>();
  input.forEach((raw, i) => {
    const label = isObject(raw) && typeof raw.name === 'string' && raw.name.trim() ? `${where}[${i}] ("${raw.name.trim()}")` : `${where}[${i}]`;
    const before = problems.length;
    const rule = parseRule(raw, `${where}[${i}]`, (field, message) => problems.push(`${label}${field ? '.' + field : ''}: ${message}`));
    if (!rule) return;
    const seen = names.get(rule.name);
    if (seen !== undefined) problems.push(`${label}.name: "${rule.name}" is already the name of ${where}[${seen}]; names must be unique`);
    else names.set(rule.name, i);
    if (problems.length === before) rules.push(rule);
  });
  return { rules, problems };
}

type Report = (field: string, message: string) => void;

function parseRule(raw: unknown, defaultName: string, bad: Report): RuleSpec | null {
  if (!isObject(raw)) {
    bad('', `expected an object such as { "match": "registry.example.org/**", "ttl": "1h" }, got ${JSON.stringify(raw)}`);
    return null;
  }
  for (const key of Object.keys(raw)) {
    if (!(RULE_FIELDS as readonly string[]).includes(key)) {
      const hint = key === 'methods' ? ' (did you mean "method"?)' : key === 'maxObjectSize' ? ' (did you mean "maxObjectSizeMB"?)' : '';
      bad(key, `unknown field${hint}; a rule may have ${RULE_FIELDS.join(', ')}`);
    }
  }
  let name = defaultName;
  if (raw.name !== undefined) {
    if (typeof raw.name !== 'string' || raw.name.trim() === '') bad('name', `expected a non-empty string, got ${JSON.stringify(raw.name)}`);
    else if (/["\\\r\n]/.test(raw.name)) bad('name', `"${raw.name}" must not contain quotes, backslashes or line breaks (it goes into the Cache-Status header)`);
    else name = raw.name.trim();
  }
  const rule: RuleSpec = { name, match: '' };
  if (raw.match === undefined) bad('match', 'missing: every rule needs a "match" such as "*.example.org/pool/**/*.deb" (host pattern, then a path glob)');
  else if (typeof raw.match !== 'string' || raw.match.trim() === '') bad('match', `expected a string such as "*.example.org/pool/**/*.deb", got ${JSON.stringify(raw.match)}`);
  else {
    const problem = matchProblem(raw.match.trim());
    if (problem) bad('match', `"${raw.match}" ${problem}`);
    else rule.match = raw.match.trim();
  }
  if (raw.method !== undefined) {
    const list = typeof raw.method === 'string' ? raw.method.split(',').map((s) => s.trim()).filter(Boolean) : raw.method;
    if (!Array.isArray(list) || list.length === 0 || !list.every((m) => typeof m === 'string' && TOKEN.test(m))) {
      bad('method', `expected a method or a list of methods such as "GET" or ["GET", "HEAD"], got ${JSON.stringify(raw.method)}`);
    } else rule.method = list.map((m: string) => m.toUpperCase());
  }
  if (raw.headers !== undefined) {
    if (!isObject(raw.headers) || Object.keys(raw.headers).length === 0) bad('headers', `expected an object of header name to value pattern such as { "accept": "*json*" }, got ${JSON.stringify(raw.headers)}`);
    else {
      const headers: Record<string, string> = {};
      for (const [h, v] of Object.entries(raw.headers)) {
        if (!TOKEN.test(h)) bad(`headers.${h}`, 'is not a valid header field name');
        else if (typeof v !== 'string') bad(`headers.${h}`, `expected a value pattern (a string, * for any characters), got ${JSON.stringify(v)}`);
        else headers[h.toLowerCase()] = v;
      }
      rule.headers = headers;
    }
  }
  if (raw.policy !== undefined) {
    if (typeof raw.policy === 'string' && (RULE_POLICIES as readonly string[]).includes(raw.policy)) rule.policy = raw.policy as RulePolicyName;
    else bad('policy', `${JSON.stringify(raw.policy)} is invalid; expected one of ${RULE_POLICIES.join(', ')}`);
  }
  if (raw.ttl !== undefined) {
    const ttl = parseDuration(raw.ttl);
    if (typeof ttl !== 'number') bad('ttl', `${JSON.stringify(raw.ttl)} is invalid; ${ttl.problem}`);
    else if (ttl > MAX_TTL) bad('ttl', `${JSON.stringify(raw.ttl)} is longer than the most allowed, 3650d`);
    else rule.ttl = Math.floor(ttl);
  }
  if (raw.admitAfter !== undefined) {
    const n = raw.admitAfter;
    if (typeof n !== 'number' || !Number.isInteger(n) || n < 1 || n > 1_000_000) bad('admitAfter', `${JSON.stringify(n)} is invalid; expected a whole number from 1 to 1000000`);
    else rule.admitAfter = n;
  }
  if (raw.maxObjectSizeMB !== undefined) {
    const n = raw.maxObjectSizeMB;
    if (typeof n !== 'number' || !Number.isFinite(n) || n <= 0 || n > 1024 * 1024) bad('maxObjectSizeMB', `${JSON.stringify(n)} is invalid; expected a number of MiB above 0, at most 1048576`);
    else rule.maxObjectSizeMB = n;
  }
  if (raw.serveStaleIfOffline !== undefined) {
    if (typeof raw.serveStaleIfOffline !== 'boolean') bad('serveStaleIfOffline', `${JSON.stringify(raw.serveStaleIfOffline)} is invalid; expected true or false`);
    else rule.serveStaleIfOffline = raw.serveStaleIfOffline;
  }
  if (raw.delay !== undefined) {
    const delay = parseDelay(raw.delay);
    if ('problem' in delay) bad('delay', `${JSON.stringify(raw.delay)} is invalid; ${delay.problem}`);
    else rule.delay = delay;
  }
  if (raw.fail !== undefined) {
    const fail = parseFail(raw.fail);
    if ('problem' in fail) bad('fail', `${JSON.stringify(raw.fail)} is invalid; ${fail.problem}`);
    else rule.fail = fail;
  }
  return rule;
}

/** Why a match pattern cannot be used, or null. */
function matchProblem(match: string): string | null {
  const m = /^(?:([a-z][a-z0-9+.-]*):\/\/)?([^/]*)(\/.*)?$/i.exec(match);
  if (!m) return 'is not of the form host/path-glob';
  const [, scheme, host, path] = m;
  if (scheme !== undefined && scheme.toLowerCase() !== 'http' && scheme.toLowerCase() !== 'https') return `names the scheme "${scheme}"; only http:// and https:// (or none, for both) can be matched`;
  if (host === '' && path === undefined) return 'matches nothing: give a host pattern ("*" for any host) and/or a path glob starting with "/"';
  if (/[\s?#]/.test(match)) return 'must not contain spaces, "?" or "#" (the path glob is matched against the path only, without the query)';
  if (!/^(\*|[a-z0-9*_.-]+|\[[0-9a-f:.*]+\])?(:(\d{1,5}|\*))?$/i.test(host)) return `has the host pattern "${host}"; expected a host name with * wildcards (e.g. *.example.org, registry.local:4873, *)`;
  let depth = 0;
  for (const c of match) {
    if (c === '{') depth++;
    if (c === '}') depth--;
    if (depth < 0 || depth > 1) return 'has unbalanced or nested { } alternatives';
  }
  if (depth !== 0) return 'has unbalanced or nested { } alternatives';
  return null;
}

function parseDelay(value: unknown): { min: number; max: number } | { problem: string } {
  const expected = { problem: `expected milliseconds (e.g. 200), a range "100-500", [100, 500] or { "min": 100, "max": 500 }, each at most ${MAX_DELAY_MS}` };
  let min: unknown;
  let max: unknown;
  if (typeof value === 'number') min = max = value;
  else if (typeof value === 'string') {
    const m = /^\s*(\d+(?:\.\d+)?)\s*(?:ms)?\s*(?:(?:-|\.\.)\s*(\d+(?:\.\d+)?)\s*(?:ms)?\s*)?$/.exec(value);
    if (!m) return expected;
    min = Number(m[1]);
    max = m[2] === undefined ? min : Number(m[2]);
  } else if (Array.isArray(value) && value.length === 2) [min, max] = value;
  else if (isObject(value)) ({ min, max } = value as { min?: unknown; max?: unknown });
  else return expected;
  if (typeof min !== 'number' || typeof max !== 'number' || !Number.isFinite(min) || !Number.isFinite(max) || min < 0 || max > MAX_DELAY_MS) return expected;
  if (min > max) return { problem: `the range goes from ${min} down to ${max}; write the smaller number first` };
  return { min, max };
}

function parseFail(value: unknown): { status: number; rate: number } | { problem: string } {
  const expected = { problem: 'expected { "status": 503, "rate": 0.1 } (rate from 0 to 1, or a string such as "10%"; default 1), or just a status code' };
  const spec = typeof value === 'number' ? { status: value } : value;
  if (!isObject(spec)) return expected;
  for (const key of Object.keys(spec)) if (key !== 'status' && key !== 'rate') return { problem: `unknown field "${key}"; ${expected.problem}` };
  const status = spec.status;
  if (typeof status !== 'number' || !Number.isInteger(status) || status < 400 || status > 599) return { problem: `the status must be a whole number from 400 to 599 (an error the client should see), got ${JSON.stringify(status)}` };
  let rate = spec.rate ?? 1;
  if (typeof rate === 'string') {
    const m = /^\s*(\d+(?:\.\d+)?)\s*%\s*$/.exec(rate);
    rate = m ? Number(m[1]) / 100 : NaN;
  }
  if (typeof rate !== 'number' || !Number.isFinite(rate) || rate < 0 || rate > 1) return { problem: `the rate must be from 0 to 1 (or "0%" to "100%"), got ${JSON.stringify(spec.rate)}` };
  return { status, rate };
}
