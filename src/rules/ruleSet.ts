import type { CacheConfig, CachePolicyName } from '../core/config';
import { PRESETS, type PresetName } from './presets';
import { IMMUTABLE_DEFAULT_TTL, type RuleSpec } from './spec';

/** Request headers as Node gives them (lower-case names). */
type Headers = Record<string, string | string[] | undefined>;

interface CompiledMatch {
  scheme: string | null;
  host: RegExp | null;
  port: string | null;
  path: RegExp | null;
}

export interface CompiledRule {
  readonly spec: RuleSpec;
  readonly name: string;
  matches(method: string, url: URL, headers: Headers): boolean;
}

/** Most alternatives one `{a,b}` pattern may expand to. */
const MAX_ALTERNATIVES = 256;

/** Expands `{a,b}` alternatives (not nested): `*.{deb,udeb}` -> `*.deb`, `*.udeb`. */
export function expandAlternatives(pattern: string): string[] {
  const open = pattern.indexOf('{');
  if (open < 0) return [pattern];
  const close = pattern.indexOf('}', open);
  const head = pattern.slice(0, open);
  const tails = expandAlternatives(pattern.slice(close + 1));
  const out: string[] = [];
  for (const alt of pattern.slice(open + 1, close).split(',')) {
    for (const tail of tails) {
      out.push(head + alt + tail);
      if (out.length > MAX_ALTERNATIVES) throw new Error(`expands to more than ${MAX_ALTERNATIVES} patterns`);
    }
  }
  return out;
}

const escape = (s: string) => s.replace(/[.+^${}()|[\]\\?]/g, '\\$&');

/** A path glob as a regular expression: `*` within one segment, `**` across segments (`/**\/` also matches `/`). */
export function pathGlobToRegExp(glob: string): RegExp {
  let re = '';
  for (let i = 0; i < glob.length; ) {
    if (glob.startsWith('/**/', i)) {
      re += '/(?:.*/)?';
      i += 4;
    } else if (glob.startsWith('/**', i) && i + 3 === glob.length) {
      re += '(?:/.*)?';
      i += 3;
    } else if (glob.startsWith('**', i)) {
      re += '.*';
      i += 2;
    } else if (glob[i] === '*') {
      re += '[^/]*';
      i++;
    } else {
      re += escape(glob[i]);
      i++;
    }
  }
  return new RegExp(`^${re}$`);
}

/** A host pattern (`*.example.org`, `registry.local`, `*`) as a regular expression; `*` spans dots too. */
function hostToRegExp(host: string): RegExp | null {
  if (host === '' || host === '*') return null;
  return new RegExp(`^${host.toLowerCase().split('*').map(escape).join('.*')}$`);
}

function compileMatch(pattern: string): CompiledMatch {
  const m = /^(?:([a-z][a-z0-9+.-]*):\/\/)?([^/]*)(\/.*)?$/i.exec(pattern)!;
  const [, scheme, authority, path] = m;
  let host = authority;
  let port: string | null = null;
  const portMatch = /^(.*?):(\d{1,5}|\*)$/.exec(authority);
  if (portMatch && !authority.endsWith(']')) {
    host = portMatch[1];
    port = portMatch[2] === '*' ? null : portMatch[2];
  }
  return { scheme: scheme ? scheme.toLowerCase() + ':' : null, host: hostToRegExp(host), port, path: path && path !== '/**' ? pathGlobToRegExp(path) : null };
}

function effectivePort(url: URL): string {
  return url.port || (url.protocol === 'https:' ? '443' : '80');
}

function headerText(headers: Headers, name: string): string | undefined {
  const v = headers[name];
  return Array.isArray(v) ? v.join(', ') : v;
}

export function compileRule(spec: RuleSpec): CompiledRule {
  const alternatives = expandAlternatives(spec.match).map(compileMatch);
  const methods = spec.method ? new Set(spec.method) : null;
  const headers = spec.headers
    ? Object.entries(spec.headers).map(([name, glob]) => [name, new RegExp(`^${glob.split('*').map(escape).join('.*')}$`, 'is')] as const)
    : [];
  return {
    spec,
    name: spec.name,
    matches(method, url, reqHeaders) {
      if (methods && !methods.has(method)) return false;
      for (const [name, re] of headers) {
        const value = headerText(reqHeaders, name);
        if (value === undefined || !re.test(value)) return false;
      }
      for (const alt of alternatives) {
        if (alt.scheme && alt.scheme !== url.protocol) continue;
        if (alt.host && !alt.host.test(url.hostname)) continue;
        if (alt.port && alt.port !== effectivePort(url)) continue;
        if (alt.path && !alt.path.test(url.pathname)) continue;
        return true;
      }
      return false;
    },
  };
}

/**
 * The rules in force: the user's own first, then each preset's in the order listed. The first
 * rule that matches a request decides its settings.
 */
export class RuleSet {
  static readonly EMPTY = new RuleSet([]);

  /** Some rule delays or fails requests: the server's quick lanes must ask before answering. */
  readonly shapes: boolean;
  /** Some rule sets the `offline` or `off` policy, which changes what a stored entry may answer. */
  readonly setsServingPolicy: boolean;
  private readonly byName = new Map<string, CompiledRule>();

  private constructor(readonly rules: readonly CompiledRule[]) {
    this.shapes = rules.some((r) => r.spec.delay !== undefined || r.spec.fail !== undefined);
    this.setsServingPolicy = rules.some((r) => r.spec.policy === 'offline' || r.spec.policy === 'off');
    for (const r of rules) this.byName.set(r.name, r);
  }

  /** A rule by its name (the one an entry was stored under), if it is still in force. */
  named(name: string): CompiledRule | null {
    return this.byName.get(name) ?? null;
  }

  static of(rules: readonly RuleSpec[], presets: readonly PresetName[] = []): RuleSet {
    const all = [...rules, ...presets.flatMap((p) => PRESETS[p])];
    return all.length ? new RuleSet(all.map(compileRule)) : RuleSet.EMPTY;
  }

  get empty(): boolean {
    return this.rules.length === 0;
  }

  /** The first rule that matches, or null. */
  match(method: string, url: URL, headers: Headers): CompiledRule | null {
    for (const rule of this.rules) if (rule.matches(method, url, headers)) return rule;
    return null;
  }
}

/** The cache settings one request gets: the global ones, with what its rule sets laid over them. */
export interface RequestCacheSettings {
  policy: CachePolicyName | 'immutable';
  /** Null: not set (the RFC heuristic applies; `always` uses its default lifetime). */
  ttl: number | null;
  admitAfter: number;
  maxObjectSizeMB: number;
  serveStaleIfOffline: boolean;
  /** The rule that applied (its name), or null. */
  rule: string | null;
}

/**
 * Lays a rule over the global settings. A global `offline`, `off` or `replay` wins over every
 * rule's policy: rules refine caching, they never make an offline proxy contact an origin, nor
 * make caching that was switched off come back.
 */
export function settingsFor(config: CacheConfig, rule: CompiledRule | null): RequestCacheSettings {
  const base: RequestCacheSettings = {
    policy: config.policy,
    ttl: config.ttl,
    admitAfter: config.admitAfter,
    maxObjectSizeMB: config.maxObjectSizeMB,
    serveStaleIfOffline: config.serveStaleIfOffline,
    rule: null,
  };
  if (!rule) return base;
  const s = rule.spec;
  const globalWins = config.policy === 'offline' || config.policy === 'off' || config.policy === 'replay';
  const policy = globalWins ? config.policy : (s.policy ?? config.policy);
  return {
    policy,
    ttl: s.ttl ?? (policy === 'immutable' ? IMMUTABLE_DEFAULT_TTL : config.ttl),
    admitAfter: s.admitAfter ?? config.admitAfter,
    maxObjectSizeMB: s.maxObjectSizeMB ?? config.maxObjectSizeMB,
    serveStaleIfOffline: s.serveStaleIfOffline ?? config.serveStaleIfOffline,
    rule: s.name,
  };
}
