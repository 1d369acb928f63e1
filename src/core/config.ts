import * as os from 'node:os';
import * as path from 'node:path';
import { parsePresets, type PresetName } from '../rules/presets';
import { parseRules, type RuleSpec } from '../rules/spec';

/**
 * The one configuration object of the proxy. The CLI builds it from flags and a config file,
 * the extension from settings.json; both hand it to `startProxy`.
 */
export interface ProxyConfig {
  port: number;
  host: string;
  /** Binding a non-loopback host is refused unless this is set: never an open proxy by accident. */
  allowRemote: boolean;
  /**
   * Host names besides the proxy's own address under which path-style requests are served
   * (`.example.com` also covers subdomains, `*` any name). Others get 421: DNS rebinding.
   */
  allowedHosts: string[];
  /** Basic credentials every client must present in Proxy-Authorization (407 otherwise). */
  auth: { username: string; password: string } | null;
  /** Another forward proxy that origin traffic goes through, e.g. http://corp-proxy:3128. */
  upstreamProxy: string | null;
  /** Hosts reached directly even with an upstream proxy (NO_PROXY syntax). */
  noProxy: string[];
  /** Seconds to wait for an origin's response headers (and between body chunks) before 504. */
  timeoutSeconds: number;
  /** Largest request head accepted, in bytes (431 beyond it). */
  maxHeaderBytes: number;
  /**
   * Seconds a client connection may make no progress either way (nothing read, nothing written)
   * before it is closed: reclaims stalled readers and forgotten keep-alive connections.
   */
  idleTimeoutSeconds: number;
  /** Seconds a client has to send a complete request head (408 beyond it): the slowloris guard. */
  headersTimeoutSeconds: number;
  cache: CacheConfig;
  har: HarConfig;
  /** Per-URL-pattern cache settings and traffic shaping, first match wins (src/rules/). */
  rules: RuleSpec[];
  /** Package-manager rule sets, consulted after `rules`, in this order. */
  presets: PresetName[];
  https: HttpsConfig;
}

/** HTTPS interception: opt-in per host; everything else is tunnelled untouched. */
export interface HttpsConfig {
  /** CONNECT hosts whose TLS the proxy terminates with its own CA, so their requests are cached (NO_PROXY-like patterns, `*.example.com`, `*`). */
  intercept: string[];
  /** Hosts never intercepted (certificate-pinned clients); wins over `intercept`. */
  tunnel: string[];
  /** Where the local CA lives (ca.pem, ca-key.pem, ca-bundle.pem). */
  caDir: string;
  /** A PEM file of extra CAs trusted for origins, besides Node's roots and NODE_EXTRA_CA_CERTS. */
  upstreamCa: string | null;
}

export type CachePolicyName = 'standard' | 'private' | 'always' | 'offline' | 'off' | 'replay';

/** Recording exchanges into a HAR file, and answering from one (src/har/). */
export interface HarConfig {
  /** Every exchange that passes is appended to this HAR file; null: not recording. */
  record: string | null;
  /** Request and response bodies kept per recorded exchange, in MiB; beyond it the entry says the body was cut. */
  recordMaxBodyMB: number;
  /** Credential header values (Authorization, Cookie, *token*, ...) are replaced by a marker in recordings and exports. */
  redact: boolean;
  /** The HAR file that answers requests under the `replay` policy. */
  replay: string | null;
  /** What a request no entry matches gets under `replay`: a 504, or forwarded to the origin. */
  replayMiss: 'error' | 'forward';
}

export const REPLAY_MISS: readonly HarConfig['replayMiss'][] = ['error', 'forward'];

export interface CacheConfig {
  policy: CachePolicyName;
  /** Disk tier location; null keeps the cache in memory only. */
  dir: string | null;
  /**
   * Seconds of freshness for responses without explicit freshness, and the lifetime of
   * everything under `always`. Null (the default): standard/private give such responses only
   * the RFC 9111 heuristic; `always` uses 300.
   */
  ttl: number | null;
  /** Store a URL only from its Nth request. */
  admitAfter: number;
  /** Most entries kept; 0: no count limit (the size bounds the cache). */
  maxEntries: number;
  /** Total size of the disk tier (and cap of the memory tier), in MiB. */
  maxSizeMB: number;
  /** Size of the memory tier, in MiB. */
  maxMemoryMB: number;
  /** Responses larger than this pass through unstored, in MiB. */
  maxObjectSizeMB: number;
  /** Content types never stored; `*` wildcards allowed, e.g. `video/*`. */
  excludeContentTypes: string[];
  /** Serve a stored entry, stale if need be, when the origin cannot be reached. */
  serveStaleIfOffline: boolean;
  /** After storing an HTML page, prefetch up to this many same-origin links (0 = off). */
  prefetchLinks: number;
}

export const CACHE_POLICIES: readonly CachePolicyName[] = ['standard', 'private', 'always', 'offline', 'off', 'replay'];

export function defaultCacheDir(): string {
  const base = process.env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache');
  return path.join(base, 'caching-proxy');
}

/** The local CA's folder: the user's config directory. */
export function defaultCaDir(): string {
  const base = process.env.XDG_CONFIG_HOME || path.join(os.homedir(), '.config');
  return path.join(base, 'caching-proxy');
}

export const DEFAULT_PORT = 8899;

export function defaultConfig(): ProxyConfig {
  return {
    port: DEFAULT_PORT,
    host: '127.0.0.1',
    allowRemote: false,
    allowedHosts: [],
    auth: null,
    upstreamProxy: null,
    noProxy: [],
    timeoutSeconds: 30,
    maxHeaderBytes: 16 * 1024,
    idleTimeoutSeconds: 120,
    headersTimeoutSeconds: 20,
    cache: {
      policy: 'standard',
      dir: defaultCacheDir(),
      ttl: null,
      admitAfter: 1,
      // The size bounds the cache (package caches hold many small entries), not a count.
      maxEntries: 0,
      maxSizeMB: 10 * 1024,
      maxMemoryMB: 64,
      maxObjectSizeMB: 256,
      excludeContentTypes: [],
      serveStaleIfOffline: true,
      prefetchLinks: 0,
    },
    har: { record: null, recordMaxBodyMB: 10, redact: true, replay: null, replayMiss: 'error' },
    rules: [],
    presets: [],
    https: { intercept: [], tunnel: [], caDir: defaultCaDir(), upstreamCa: null },
  };
}

export function isLoopbackHost(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  return h === 'localhost' || h === '::1' || /^127(\.\d{1,3}){3}$/.test(h);
}

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(problems.join('\n'));
    this.name = 'ConfigError';
  }
}

type Partialish<T> = { [K in keyof T]?: T[K] extends object | null ? Partialish<T[K]> | T[K] : T[K] };
export type ConfigInput = Omit<Partialish<ProxyConfig>, 'rules' | 'presets'> & { cache?: Partial<CacheConfig>; har?: Partial<HarConfig>; rules?: unknown; presets?: unknown };

/**
 * Merges `input` over the defaults and checks every value. Throws ConfigError listing every
 * problem at once, each naming the setting, the bad value and what is allowed.
 */
export function resolveConfig(input: unknown, base: ProxyConfig = defaultConfig()): ProxyConfig {
  const problems: string[] = [];
  const src = (isObject(input) ? input : {}) as Record<string, unknown>;
  const cacheSrc = (isObject(src.cache) ? src.cache : {}) as Record<string, unknown>;
  const harSrc = (isObject(src.har) ? src.har : {}) as Record<string, unknown>;
  const httpsSrc = (isObject(src.https) ? src.https : {}) as Record<string, unknown>;
  const v = new Validator(problems);

  const config: ProxyConfig = {
    port: v.int('port', src.port, base.port, 0, 65535),
    host: v.str('host', src.host, base.host, (s) => (s.trim() === '' ? 'must not be empty' : null)),
    allowRemote: v.bool('allowRemote', src.allowRemote, base.allowRemote),
    allowedHosts: checkAllowedHosts(v.list('allowedHosts', src.allowedHosts, base.allowedHosts), problems),
    auth: v.auth('auth', src.auth, base.auth),
    upstreamProxy: v.nullableStr('upstreamProxy', src.upstreamProxy, base.upstreamProxy, checkProxyUrl),
    noProxy: v.list('noProxy', src.noProxy, base.noProxy),
    timeoutSeconds: v.num('timeoutSeconds', src.timeoutSeconds, base.timeoutSeconds, 0.001, 86_400),
    maxHeaderBytes: v.int('maxHeaderBytes', src.maxHeaderBytes, base.maxHeaderBytes, 1024, 1024 * 1024),
    idleTimeoutSeconds: v.num('idleTimeoutSeconds', src.idleTimeoutSeconds, base.idleTimeoutSeconds, 0.05, 86_400),
    headersTimeoutSeconds: v.num('headersTimeoutSeconds', src.headersTimeoutSeconds, base.headersTimeoutSeconds, 0.05, 3_600),
    cache: {
      policy: v.oneOf('cache.policy', cacheSrc.policy, base.cache.policy, CACHE_POLICIES),
      dir: v.nullableStr('cache.dir', cacheSrc.dir, base.cache.dir, () => null),
      ttl: v.nullableNum('cache.ttl', cacheSrc.ttl, base.cache.ttl, 0, 10 * 365 * 86_400),
      admitAfter: v.int('cache.admitAfter', cacheSrc.admitAfter, base.cache.admitAfter, 1, 1_000_000),
      maxEntries: v.int('cache.maxEntries', cacheSrc.maxEntries, base.cache.maxEntries, 0, 100_000_000),
      maxSizeMB: v.num('cache.maxSizeMB', cacheSrc.maxSizeMB, base.cache.maxSizeMB, 0.001, 16 * 1024 * 1024),
      maxMemoryMB: v.num('cache.maxMemoryMB', cacheSrc.maxMemoryMB, base.cache.maxMemoryMB, 0, 1024 * 1024),
      maxObjectSizeMB: v.num('cache.maxObjectSizeMB', cacheSrc.maxObjectSizeMB, base.cache.maxObjectSizeMB, 0.000001, 1024 * 1024),
      excludeContentTypes: v.list('cache.excludeContentTypes', cacheSrc.excludeContentTypes, base.cache.excludeContentTypes),
      serveStaleIfOffline: v.bool('cache.serveStaleIfOffline', cacheSrc.serveStaleIfOffline, base.cache.serveStaleIfOffline),
      prefetchLinks: v.int('cache.prefetchLinks', cacheSrc.prefetchLinks, base.cache.prefetchLinks, 0, 100),
    },
    har: {
      record: v.nullableStr('har.record', harSrc.record, base.har.record, () => null),
      recordMaxBodyMB: v.num('har.recordMaxBodyMB', harSrc.recordMaxBodyMB, base.har.recordMaxBodyMB, 0, 1024),
      redact: v.bool('har.redact', harSrc.redact, base.har.redact),
      replay: v.nullableStr('har.replay', harSrc.replay, base.har.replay, () => null),
      replayMiss: v.oneOf('har.replayMiss', harSrc.replayMiss, base.har.replayMiss, REPLAY_MISS),
    },
    rules: base.rules,
    presets: base.presets,
    https: {
      intercept: v.hostPatterns('https.intercept', httpsSrc.intercept, base.https.intercept),
      tunnel: v.hostPatterns('https.tunnel', httpsSrc.tunnel, base.https.tunnel),
      caDir: v.str('https.caDir', httpsSrc.caDir, base.https.caDir, (s) => (s.trim() === '' ? 'must not be empty' : null)),
      upstreamCa: v.nullableStr('https.upstreamCa', httpsSrc.upstreamCa, base.https.upstreamCa, () => null),
    },
  };
  if (config.cache.policy === 'replay' && !config.har.replay) {
    problems.push('cache.policy: "replay" needs the HAR file to answer from (--replay FILE, setting "har": {"replay": FILE})');
  }
  if (config.har.replay && config.cache.policy !== 'replay') {
    problems.push(`har.replay: ${JSON.stringify(config.har.replay)} is only used under the "replay" policy, but cache.policy is "${config.cache.policy}" (add --policy replay)`);
  }
  if (src.rules !== undefined) {
    const parsed = parseRules(src.rules);
    problems.push(...parsed.problems);
    if (!parsed.problems.length) config.rules = parsed.rules;
  }
  if (src.presets !== undefined) {
    const parsed = parsePresets(src.presets);
    problems.push(...parsed.problems);
    if (!parsed.problems.length) config.presets = parsed.presets;
  }
  if (!isLoopbackHost(config.host) && !config.allowRemote) {
    problems.push(
      `host: "${config.host}" is not a loopback address; listening on it lets other machines use this proxy. ` +
        'Pass --allow-remote (setting "allowRemote": true) to do it anyway.',
    );
  }
  if (problems.length) throw new ConfigError(problems);
  return config;
}

const ALLOWED_HOST = /^(?:\*|\.?[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)*|\[[0-9a-f:.]+\])$/i;

function checkAllowedHosts(hosts: string[], problems: string[]): string[] {
  const bad = hosts.filter((h) => !ALLOWED_HOST.test(h));
  for (const h of bad) {
    problems.push(
      `allowedHosts: ${JSON.stringify(h)} is not a host name; expected names such as dev.example or [::1] (no port, no scheme), ` +
        '.example.com for a domain and its subdomains, or * for any name',
    );
  }
  return bad.length ? [] : hosts;
}

const HOST_PATTERN = /^(?:\*|(?:\*?\.)?[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*(?::\d{1,5})?|\[[0-9A-Fa-f:.]+\](?::\d{1,5})?|[0-9A-Fa-f:]*:[0-9A-Fa-f:.]+)$/;

function checkProxyUrl(s: string): string | null {
  try {
    const u = new URL(s);
    if (u.protocol !== 'http:') return 'must be an http:// URL such as http://proxy.example:3128';
    return null;
  } catch {
    return 'must be a URL such as http://proxy.example:3128';
  }
}

function isObject(x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}

class Validator {
  constructor(private readonly problems: string[]) {}

  private bad(name: string, value: unknown, expected: string): void {
    this.problems.push(`${name}: ${JSON.stringify(value)} is invalid; expected ${expected}`);
  }

  num(name: string, value: unknown, fallback: number, min: number, max: number): number {
    if (value === undefined) return fallback;
    const n = typeof value === 'string' && value.trim() !== '' ? Number(value) : value;
    if (typeof n !== 'number' || !Number.isFinite(n) || n < min || n > max) {
      this.bad(name, value, `a number from ${min} to ${max}`);
      return fallback;
    }
    return n;
  }

  /** A number, or null (also from an empty string) for "not set". */
  nullableNum(name: string, value: unknown, fallback: number | null, min: number, max: number): number | null {
    if (value === undefined) return fallback;
    if (value === null || value === '') return null;
    const before = this.problems.length;
    const n = this.num(name, value, 0, min, max);
    return this.problems.length > before ? fallback : n;
  }

  int(name: string, value: unknown, fallback: number, min: number, max: number): number {
    if (value === undefined) return fallback;
    const n = typeof value === 'string' && /^\s*-?\d+\s*$/.test(value) ? Number(value) : value;
    if (typeof n !== 'number' || !Number.isInteger(n) || n < min || n > max) {
      this.bad(name, value, `a whole number from ${min} to ${max}`);
      return fallback;
    }
    return n;
  }

  bool(name: string, value: unknown, fallback: boolean): boolean {
    if (value === undefined) return fallback;
    if (typeof value === 'boolean') return value;
    if (value === 'true') return true;
    if (value === 'false') return false;
    this.bad(name, value, 'true or false');
    return fallback;
  }

  str(name: string, value: unknown, fallback: string, check: (s: string) => string | null): string {
    if (value === undefined) return fallback;
    if (typeof value !== 'string') {
      this.bad(name, value, 'a string');
      return fallback;
    }
    const problem = check(value);
    if (problem) {
      this.problems.push(`${name}: ${JSON.stringify(value)} ${problem}`);
      return fallback;
    }
    return value.trim();
  }

  nullableStr(name: string, value: unknown, fallback: string | null, check: (s: string) => string | null): string | null {
    if (value === undefined) return fallback;
    if (value === null || value === '') return null;
    return this.str(name, value, fallback ?? '', check) || null;
  }

  list(name: string, value: unknown, fallback: string[]): string[] {
    if (value === undefined) return fallback;
    if (typeof value === 'string') return value.split(',').map((s) => s.trim()).filter(Boolean);
    if (Array.isArray(value) && value.every((s) => typeof s === 'string')) {
      return value.map((s) => s.trim()).filter(Boolean);
    }
    this.bad(name, value, 'a list of strings (or one comma-separated string)');
    return fallback;
  }

  /** Host patterns as NO_PROXY writes them (example.com, .example.com, *.example.com, host:port, an address, *). */
  hostPatterns(name: string, value: unknown, fallback: string[]): string[] {
    const list = this.list(name, value, fallback);
    const bad = list.filter((p) => !HOST_PATTERN.test(p));
    if (bad.length) {
      this.problems.push(`${name}: ${bad.map((b) => JSON.stringify(b)).join(', ')} ${bad.length === 1 ? 'is not a host pattern' : 'are not host patterns'}; expected e.g. example.com, *.example.com, .example.com, host:443, 10.0.0.1, [::1] or *`);
      return fallback;
    }
    return list;
  }

  oneOf<T extends string>(name: string, value: unknown, fallback: T, allowed: readonly T[]): T {
    if (value === undefined) return fallback;
    if (typeof value === 'string' && (allowed as readonly string[]).includes(value)) return value as T;
    this.bad(name, value, `one of ${allowed.join(', ')}`);
    return fallback;
  }

  auth(name: string, value: unknown, fallback: ProxyConfig['auth']): ProxyConfig['auth'] {
    if (value === undefined) return fallback;
    if (value === null || value === '') return null;
    if (typeof value === 'string') {
      const i = value.indexOf(':');
      if (i > 0) return { username: value.slice(0, i), password: value.slice(i + 1) };
    } else if (isObject(value) && typeof value.username === 'string' && typeof value.password === 'string' && value.username) {
      return { username: value.username, password: value.password };
    }
    this.problems.push(`${name}: expected "user:password" or {"username": ..., "password": ...}`);
    return fallback;
  }
}
