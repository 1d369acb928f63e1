/**
 * Path-style addressing (http://proxy:PORT/example.com/some/path) lets a browser with no proxy
 * settings use the proxy: the first path segment names the site, `/https://host/...` asks for TLS.
 */

export type PathStyleResult =
  | { kind: 'url'; url: URL }
  | { kind: 'redirect'; location: string }
  | { kind: 'invalid' };

const HOST_SEGMENT = /^(?:\[[0-9a-f:.]+\]|localhost|[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)+)(?::\d{1,5})?$/i;
const SCHEME_PREFIX = /^\/(https?):\/\/?/i;

/** The site a path-style URL on this proxy points at: { scheme, host } or null. */
function siteOf(path: string): { prefix: string; host: string } | null {
  const scheme = SCHEME_PREFIX.exec(path);
  if (scheme) {
    const rest = path.slice(scheme[0].length);
    const host = rest.split(/[/?#]/, 1)[0];
    return HOST_SEGMENT.test(host) ? { prefix: `/${scheme[1].toLowerCase()}://${host}`, host } : null;
  }
  const host = path.slice(1).split(/[/?#]/, 1)[0];
  return HOST_SEGMENT.test(host) ? { prefix: `/${host}`, host } : null;
}

export function parsePathStyle(target: string, referer: string | string[] | undefined, base: string): PathStyleResult {
  const refererSite = typeof referer === 'string' && referer.startsWith(base + '/') ? siteOf(referer.slice(base.length)) : null;
  const scheme = SCHEME_PREFIX.exec(target);
  if (scheme) {
    try {
      const url = new URL(`${scheme[1].toLowerCase()}://${target.slice(scheme[0].length)}`);
      return siteOf(target) ? { kind: 'url', url } : { kind: 'invalid' };
    } catch {
      return { kind: 'invalid' };
    }
  }
  const site = siteOf(target);
  // A root-relative link (/img/logo.png) inside a path-style page: send the browser to the same site.
  if (refererSite && (!site || site.host.toLowerCase() !== refererSite.host.toLowerCase())) {
    return { kind: 'redirect', location: refererSite.prefix + target };
  }
  if (!site) return { kind: 'invalid' };
  try {
    return { kind: 'url', url: new URL(`http://${target.slice(1)}`) };
  } catch {
    return { kind: 'invalid' };
  }
}

/** Rewrites absolute redirects from the origin so the browser stays on the proxy. */
export function pathStyleRewriter(base: string): (raw: string[]) => string[] {
  return (raw) => {
    for (let i = 0; i < raw.length; i += 2) {
      if (raw[i].toLowerCase() !== 'location') continue;
      const m = /^(https?):\/\/(.*)$/i.exec(raw[i + 1]);
      if (m) raw[i + 1] = m[1].toLowerCase() === 'https' ? `${base}/https://${m[2]}` : `${base}/${m[2]}`;
    }
    return raw;
  };
}
