import type { IncomingHttpHeaders } from 'node:http';
import { truncate as printable } from './target';

/**
 * Who may use path-style addressing (http://proxy:PORT/host/path). A browser sends such requests
 * for any page: a page on evil.example whose name is rebound to 127.0.0.1 (DNS rebinding) sends
 * them with its own Host and can read the answers; any page can point an <img>, a form or a
 * fetch at http://127.0.0.1:PORT/intranet/... (cross-site requests). So a path-style request is
 * served only when its Host names the proxy itself (or a name the user allowed) and no browser
 * marks it as coming from another site. Absolute-form requests and CONNECT are not checked
 * here: a client sends those only when it was configured to use the proxy.
 */

/** What the proxy answers to, fixed once it listens. */
export interface PathStyleSelf {
  /** The listening port: the built-in names count only with it. */
  port: number;
  /** Lower-case host names and addresses (IPv6 without brackets) that are the proxy itself. */
  names: ReadonlySet<string>;
  /** `allowedHosts` as configured: names (any port), `.example.com` for it and its subdomains, `*` for any. */
  allowedHosts: readonly string[];
}

export interface PathStyleRefusal {
  status: 403 | 421;
  /** The readable text body, naming the setting that changes it. */
  message: string;
}

/** The built-in names, plus the configured listen host (and, for a wildcard host, the machine's addresses). */
export function selfNames(configuredHost: string, boundAddress: string, interfaceAddresses: readonly string[]): Set<string> {
  const names = new Set(['127.0.0.1', 'localhost', '::1']);
  for (const h of [configuredHost, boundAddress]) names.add(bare(h));
  if (boundAddress === '0.0.0.0' || boundAddress === '::') for (const a of interfaceAddresses) names.add(bare(a));
  return names;
}

/** A path-style request's refusal, or null when it may be served. */
export function admitPathStyle(headers: IncomingHttpHeaders, self: PathStyleSelf): PathStyleRefusal | null {
  const host = headers.host;
  // Every browser sends Host; a request without one is no web page's.
  if (host === undefined || host === '') return null;
  const { hostname, port } = splitHost(host);
  if (!isSelf(hostname, port, self) && !isAllowed(hostname, self.allowedHosts)) {
    return {
      status: 421,
      message:
        `Misdirected request: path-style requests are served only when Host names this proxy ` +
        `(127.0.0.1:${self.port}, localhost:${self.port}, [::1]:${self.port}), not "${printable(host)}". ` +
        'A web page whose name was pointed at this machine (DNS rebinding) sends such requests.\n' +
        `If you reach the proxy under this name on purpose, allow it: --allowed-hosts ${printable(hostname)} ` +
        '(VS Code setting cachingProxy.allowedHosts, config file key "allowedHosts").',
    };
  }
  const why = crossSiteMark(headers, host);
  if (why === null) return null;
  return {
    status: 403,
    message:
      `Forbidden: a path-style request from another web page (${why}). ` +
      'Path-style addresses serve pages you open yourself (typed, bookmarked) and their own subresources; ' +
      'other sites must not reach your network through this proxy.\n' +
      'To use the proxy from any page, configure the browser (or the client) to use it as its HTTP proxy.',
  };
}

/** Link-local targets (169.254.0.0/16, fe80::/10) hold cloud metadata services: never fetched path-style. */
export function refuseLinkLocal(target: URL): PathStyleRefusal | null {
  if (!isLinkLocal(target.hostname)) return null;
  return {
    status: 403,
    message:
      `Forbidden: ${target.host} is a link-local address (where cloud metadata services answer); ` +
      'it is not fetched path-style. A client configured to use the proxy as its HTTP proxy can reach it.',
  };
}

/** Why the browser says the request comes from another site, or null. */
function crossSiteMark(headers: IncomingHttpHeaders, host: string): string | null {
  const site = one(headers['sec-fetch-site']);
  // Fetch Metadata, when sent, is the browser's own word: a navigation the user made is "none".
  if (site !== undefined) return site === 'same-origin' || site === 'none' ? null : `Sec-Fetch-Site: ${printable(site)}`;
  const origin = one(headers.origin);
  if (origin !== undefined) return sameHost(origin, host) ? null : `Origin: ${printable(origin)}`;
  const referer = one(headers.referer);
  if (referer !== undefined) return sameHost(referer, host) ? null : `Referer: ${printable(originOf(referer))}`;
  return null;
}

/**
 * The URL (an Origin or Referer) is on the proxy's own origin. Schemes are not compared: behind
 * a TLS-terminating front, the page is https://name while Host is name; nothing else can serve
 * pages under the proxy's host and port.
 */
function sameHost(url: string, host: string): boolean {
  try {
    return new URL(url).host === new URL(`http://${host}`).host;
  } catch {
    return false; // "null" (an opaque origin) and anything unparsable
  }
}

function originOf(url: string): string {
  try {
    return new URL(url).origin;
  } catch {
    return url.slice(0, 100);
  }
}

function isSelf(hostname: string, port: number, self: PathStyleSelf): boolean {
  return port === self.port && self.names.has(bare(hostname));
}

function isAllowed(hostname: string, allowed: readonly string[]): boolean {
  const h = bare(hostname);
  for (const entry of allowed) {
    const e = bare(entry.toLowerCase());
    if (e === '*' || e === h || (e.startsWith('.') && (h === e.slice(1) || h.endsWith(e)))) return true;
  }
  return false;
}

/** Host field value -> lower-case hostname (IPv6 kept in brackets) and port (80 when absent). */
function splitHost(host: string): { hostname: string; port: number } {
  const lower = host.toLowerCase();
  const close = lower.lastIndexOf(']');
  const colon = lower.lastIndexOf(':');
  if (colon > close) return { hostname: lower.slice(0, colon), port: lower.length > colon + 1 ? Number(lower.slice(colon + 1)) : 80 };
  return { hostname: lower, port: 80 };
}

/** Lower-case, IPv6 without brackets. */
function bare(host: string): string {
  return host.replace(/^\[|\]$/g, '').toLowerCase();
}

function isLinkLocal(hostname: string): boolean {
  const h = bare(hostname);
  if (/^169\.254\.\d{1,3}\.\d{1,3}$/.test(h)) return true;
  if (/^fe[89ab][0-9a-f]:/.test(h)) return true;
  // IPv4-mapped (::ffff:a9fe:xxxx as new URL writes ::ffff:169.254.x.y).
  return /^::ffff:a9fe:[0-9a-f]{1,4}$/.test(h);
}

function one(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}
