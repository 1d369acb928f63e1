import { ProxyError } from './exchange';
import { parsePathStyle, pathStyleRewriter } from './pathStyle';

/** Where a request goes once its target is understood. */
export interface RoutedTarget {
  url: URL;
  /** Path-style only: rewrites absolute Location headers back onto the proxy. */
  rewrite: ((raw: string[]) => string[]) | null;
  /** How the target was named: absolute-form, path-style, or origin-form inside an intercepted TLS connection. */
  form: 'absolute' | 'path-style' | 'intercepted';
}

/** A CONNECT target: host:port. */
export interface ConnectTarget {
  /** Without brackets. */
  hostname: string;
  port: number;
  /** As sent, e.g. example.com:443 or [::1]:443. */
  authority: string;
}

/** RFC 3986 host [ ":" port ], non-empty host. */
const AUTHORITY = /^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-._~!$&'()*+,;=%]+)(?::[0-9]*)?$/;
const CONNECT_AUTHORITY = /^(\[[0-9a-fA-F:.]+\]|[^\s:/[\]]+):(\d{1,5})$/;

/**
 * An absolute-form target (http:// or https://) as a URL. RFC 9110 §4.2: a non-empty host and no
 * userinfo. WHATWG URL parsing would read "http:///x" or "http://a\\b" as some other host than a
 * strict parser does, so such targets are refused.
 */
export function parseAbsoluteTarget(target: string): URL | 'bad-authority' | 'bad-url' {
  const authority = /^https?:\/\/([^/?#]*)/i.exec(target)![1];
  if (!AUTHORITY.test(authority) || target.includes('\\')) return 'bad-authority';
  try {
    const url = new URL(target);
    return url.hostname ? url : 'bad-url';
  } catch {
    return 'bad-url';
  }
}

/** CONNECT's host:port (RFC 9110 §9.3.6), or a 400 saying what was expected. */
export function parseConnectTarget(target: string): ConnectTarget | ProxyError {
  const m = CONNECT_AUTHORITY.exec(target);
  const port = m ? Number(m[2]) : 0;
  if (!m || port < 1 || port > 65535) return new ProxyError(400, `Bad CONNECT target "${truncate(target)}": expected host:port.`);
  return { hostname: m[1].replace(/^\[|\]$/g, ''), port, authority: target };
}

/** The port a URL names, or its scheme's default. */
export function portOf(url: URL): number {
  return Number(url.port || (url.protocol === 'https:' ? 443 : 80));
}

/**
 * Works out the absolute target of a request: absolute-form, path-style (http://proxy/host/path,
 * `base` being the proxy's own origin as the client named it), or, inside an intercepted TLS
 * connection to `intercepted` (https://host[:port]), origin-form. A 307 ProxyError carries the
 * Location of a root-relative path-style link in its code.
 */
export function routeTarget(target: string, referer: string | string[] | undefined, base: string, intercepted: string | null): RoutedTarget | ProxyError {
  if (intercepted !== null) {
    // The site is the one the client opened TLS to; an absolute-form target inside is taken as sent only for that site.
    if (target.startsWith('/')) return { url: new URL(intercepted + target), rewrite: null, form: 'intercepted' };
    const url = /^https:\/\//i.test(target) ? parseAbsoluteTarget(target) : 'bad-url';
    if (typeof url !== 'string' && url.origin === intercepted) return { url, rewrite: null, form: 'intercepted' };
    return new ProxyError(400, `Bad request: "${truncate(target)}" is not a path on ${intercepted}, the site this TLS connection was opened to.`);
  }
  if (/^https?:\/\//i.test(target)) {
    const url = parseAbsoluteTarget(target);
    if (url === 'bad-authority') {
      return new ProxyError(400, `Bad request: "${truncate(target)}" has no valid host[:port] (user info and backslashes are not allowed).`);
    }
    if (url === 'bad-url') return new ProxyError(400, `Bad request: "${truncate(target)}" is not a valid absolute URL.`);
    return { url, rewrite: null, form: 'absolute' };
  }
  if (!target.startsWith('/')) {
    return new ProxyError(400, `Bad request: the request target "${truncate(target)}" is neither an absolute URL nor a path.`);
  }
  const parsed = parsePathStyle(target, referer, base);
  if (parsed.kind === 'url') return { url: parsed.url, rewrite: pathStyleRewriter(base), form: 'path-style' };
  if (parsed.kind === 'redirect') return new ProxyError(307, `Redirecting to ${parsed.location}`, parsed.location);
  return new ProxyError(
    400,
    `Bad request: "${truncate(target)}" is a relative URL.\n\n` +
      'This is a forward proxy. Either configure your client to use it (curl -x ' + base + ' http://example.com/),\n' +
      'or address a site path-style: ' + base + '/example.com/some/path (https: ' + base + '/https://example.com/).',
  );
}

/** A client-supplied string made safe and short enough for a message. */
export function truncate(s: string, max = 200): string {
  const clean = s.replace(/[\x00-\x1f\x7f]/g, '?');
  return clean.length > max ? clean.slice(0, max) + '…' : clean;
}
