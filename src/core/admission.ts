import type * as http from 'node:http';
import * as os from 'node:os';
import { timingSafeEqual } from 'node:crypto';
import type { Duplex } from 'node:stream';
import type { ProxyConfig } from './config';
import { ProxyError } from './exchange';
import { requestHasBody, requestHeadProblem } from './headers';
import { admitPathStyle, refuseLinkLocal, selfNames, type PathStyleSelf } from './pathStyleGuard';
import { parseConnectTarget, portOf, routeTarget, type ConnectTarget, type RoutedTarget } from './target';

/** Why a request, CONNECT or Upgrade is not let in: the answer to give, and whether the connection is closed after it. */
export class Refusal {
  constructor(
    readonly status: number,
    readonly message: string,
    /** The target as far as it is known, for the error event. */
    readonly url: string,
    readonly headers: Record<string, string> = {},
    /** The request's framing cannot be trusted: nothing after it on the connection is forwarded. */
    readonly close = false,
  ) {}
}

export type AdmissionKind = 'request' | 'upgrade' | 'connect';

const PROXY_AUTHENTICATE = { 'Proxy-Authenticate': 'Basic realm="caching-proxy"' };
/** The site (https://host[:port]) an intercepted TLS connection was opened to, on its socket. */
const INTERCEPTED_SITE = Symbol('caching-proxy.intercepted-site');
type MarkedSocket = Duplex & { [INTERCEPTED_SITE]?: string };

/** Marks a decrypted client connection: requests on it are origin-form paths on `site`. */
export function markIntercepted(socket: Duplex, site: string): void {
  (socket as MarkedSocket)[INTERCEPTED_SITE] = site;
}

function interceptedSite(socket: Duplex): string | null {
  return (socket as MarkedSocket)[INTERCEPTED_SITE] ?? null;
}

/**
 * The one admission step every request, CONNECT and Upgrade goes through before anything is
 * forwarded: the head is well-formed, the client holds the credentials, the target is
 * understood, and it is not this proxy itself (directly, or coming back through a chain).
 */
export class Admission {
  private readonly expectedAuth: Buffer | null;
  private readonly localAddresses = new Set<string>();
  private address: { port: number; url: string } | null = null;
  /** Who may address the proxy path-style (pathStyleGuard.ts). */
  private pathStyle: PathStyleSelf | null = null;

  constructor(
    private readonly config: Pick<ProxyConfig, 'auth' | 'maxHeaderBytes' | 'host' | 'allowedHosts'>,
    /** Our Via received-by token: a per-instance suffix tells our own requests coming back (loops) from chained instances. */
    readonly viaName: string,
  ) {
    const auth = config.auth;
    this.expectedAuth = auth ? Buffer.from(`Basic ${Buffer.from(`${auth.username}:${auth.password}`).toString('base64')}`) : null;
  }

  /** The address the server listens on: the proxy's own names and port, for loop checks and path-style links. */
  listening(bound: string, port: number, url: string): void {
    this.address = { port, url };
    const add = (a: string) => this.localAddresses.add(a.toLowerCase());
    ['localhost', '127.0.0.1', '::1', '0.0.0.0', '::', bound, os.hostname()].forEach(add);
    const interfaces = Object.values(os.networkInterfaces()).flatMap((list) => (list ?? []).map((i) => i.address));
    interfaces.forEach(add);
    this.pathStyle = { port, names: selfNames(this.config.host, bound, interfaces), allowedHosts: this.config.allowedHosts };
  }

  admit(req: http.IncomingMessage, kind: 'connect'): ConnectTarget | Refusal;
  admit(req: http.IncomingMessage, kind: 'request' | 'upgrade'): RoutedTarget | Refusal;
  admit(req: http.IncomingMessage, kind: AdmissionKind): ConnectTarget | RoutedTarget | Refusal {
    const sent = req.url ?? '';
    const problem = requestHeadProblem(req, this.config.maxHeaderBytes);
    if (problem) return new Refusal(problem.status, problem.message, sent, {}, kind === 'request');
    const intercepted = interceptedSite(req.socket);
    // Inside an intercepted connection the client authenticated once, on its CONNECT (clients send no Proxy-Authorization inside TLS).
    if (intercepted === null && !this.authorizedBy(req.headers['proxy-authorization'])) {
      const message = kind === 'request' ? 'Proxy authentication required: send Proxy-Authorization with the configured credentials.' : 'Proxy authentication required.';
      return new Refusal(407, message, sent, PROXY_AUTHENTICATE);
    }
    if (kind === 'connect') {
      if (intercepted !== null) return new Refusal(400, 'Bad request: CONNECT inside an intercepted HTTPS connection.', sent);
      const target = parseConnectTarget(sent);
      if (target instanceof ProxyError) return new Refusal(target.status, target.message, sent);
      if (this.targetsSelf(target.hostname, target.port)) return new Refusal(508, `Loop detected: ${sent} is this proxy itself.`, sent);
      return target;
    }
    // Node hands an upgrade request's body over as the first tunnel bytes; forwarding its length without it would hang the origin.
    if (kind === 'upgrade' && requestHasBody(req.headers)) return new Refusal(400, 'Bad request: an Upgrade request must not carry a body.', sent);
    if (intercepted === null && sent.startsWith('/') && this.pathStyle !== null) {
      // Path-style: only for the proxy's own names, and not for other sites' pages (DNS rebinding, cross-site requests).
      const refused = admitPathStyle(req.headers, this.pathStyle);
      if (refused) return new Refusal(refused.status, refused.message, sent);
    }
    const base = req.headers.host ? `http://${req.headers.host}` : (this.address?.url ?? 'http://localhost');
    const routed = routeTarget(sent, req.headers.referer, base, intercepted);
    if (routed instanceof ProxyError) {
      if (routed.status !== 307) return new Refusal(routed.status, routed.message, sent, {}, kind === 'request');
      // A root-relative link on a path-style page: a browser follows the redirect; an upgrade cannot.
      return kind === 'request' ? new Refusal(307, routed.message, sent, { Location: routed.code ?? '/' }) : new Refusal(400, routed.message, sent);
    }
    const { url } = routed;
    const linkLocal = routed.form === 'path-style' ? refuseLinkLocal(url) : null;
    if (linkLocal) return new Refusal(linkLocal.status, linkLocal.message, url.href);
    if (this.targetsSelf(url.hostname, portOf(url)) || this.viaLoop(req)) {
      const advice = kind === 'request' ? ' Send requests for other servers.' : '';
      return new Refusal(508, `Loop detected: ${url.host} is this proxy itself.${advice}`, url.href);
    }
    return routed;
  }

  /** A target that is this proxy itself would loop forever. */
  targetsSelf(hostname: string, port: number): boolean {
    if (!this.address || port !== this.address.port) return false;
    const h = hostname.replace(/^\[|\]$/g, '').toLowerCase();
    return this.localAddresses.has(h) || /^127\./.test(h);
  }

  authorizedBy(given: string | undefined): boolean {
    if (!this.expectedAuth) return true;
    if (typeof given !== 'string') return false;
    const buf = Buffer.from(given.trim());
    return buf.length === this.expectedAuth.length && timingSafeEqual(buf, this.expectedAuth);
  }

  private viaLoop(req: http.IncomingMessage): boolean {
    const via = req.headers.via;
    return typeof via === 'string' && via.includes(this.viaName);
  }
}
