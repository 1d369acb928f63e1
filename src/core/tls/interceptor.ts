import * as net from 'node:net';
import * as tls from 'node:tls';
import { markIntercepted } from '../admission';
import { writeRawResponse } from '../answers';
import type { HttpsConfig } from '../config';
import type { EventBus } from '../events';
import { NoProxyList } from '../noProxy';
import type { ConnectTarget } from '../target';
import { loadOrCreateCa, type LocalCa } from './ca';
import { LeafCertificates } from './leaves';
import { CLIENT_CLOSED_UNUSED, CLIENT_REJECTED_CA } from './names';

/** The TLS alerts a client sends when it does not trust the certificate it was shown. */
const REJECTED_CERTIFICATE = new Set([
  'ERR_SSL_TLSV1_ALERT_UNKNOWN_CA',
  'ERR_SSL_SSLV3_ALERT_BAD_CERTIFICATE',
  'ERR_SSL_SSLV3_ALERT_CERTIFICATE_UNKNOWN',
  'ERR_SSL_TLSV1_ALERT_DECRYPT_ERROR',
]);
const HTTP_METHOD = /^[A-Z]{3,10} \S/;

/**
 * HTTPS interception: a CONNECT to a host on the intercept list (and not on the tunnel list) is
 * answered 200, the TLS handshake is completed here with a leaf for the SNI name signed by the
 * local CA, and the decrypted connection is handed to the server's HTTP parser, marked with its
 * site so that its requests become https:// URLs for the same handler as plain HTTP.
 */
export class Interceptor {
  private readonly intercept: NoProxyList;
  private readonly tunnel: NoProxyList;
  readonly leaves: LeafCertificates;

  private constructor(
    readonly ca: LocalCa,
    private readonly config: HttpsConfig,
    private readonly events: EventBus,
  ) {
    this.intercept = new NoProxyList(config.intercept);
    this.tunnel = new NoProxyList(config.tunnel);
    this.leaves = new LeafCertificates(ca);
  }

  /** Null when nothing is to be intercepted (then no CA is made or read). */
  static async create(config: HttpsConfig, events: EventBus): Promise<Interceptor | null> {
    if (config.intercept.length === 0) return null;
    const ca = await loadOrCreateCa(config.caDir);
    if (ca.created) events.emit({ type: 'notice', level: 'warn', message: `HTTPS interception: made a new local CA, ${ca.certPath} (clients must trust it: caching-proxy ca)` });
    return new Interceptor(ca, config, events);
  }

  /** The same CA and leaves under new lists: a settings change keeps the contexts already made. */
  withLists(config: HttpsConfig): Interceptor | null {
    if (config.intercept.length === 0) return null;
    const next = new Interceptor(this.ca, config, this.events);
    (next as { leaves: LeafCertificates }).leaves = this.leaves;
    return next;
  }

  sameCa(config: HttpsConfig): boolean {
    return config.caDir === this.config.caDir;
  }

  intercepts(target: ConnectTarget): boolean {
    return this.intercept.bypasses(target.hostname, target.port) && !this.tunnel.bypasses(target.hostname, target.port);
  }

  /**
   * Takes over an admitted CONNECT: answers 200, checks that TLS follows, completes the
   * handshake and gives the decrypted socket to `serve`. Anything else is logged and closed.
   */
  accept(id: number, target: ConnectTarget, client: net.Socket, head: Buffer, idleMs: number, serve: (socket: tls.TLSSocket) => void): void {
    const started = performance.now();
    const site = new URL(`https://${target.authority}/`).origin;
    const fail = (message: string, code?: string) => {
      this.events.emit({ type: 'error', id, method: 'CONNECT', url: target.authority, code, message });
    };
    client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
    this.events.emit({ type: 'tunnel-open', id, target: target.authority, intercepted: true });
    client.once('close', () => {
      this.events.emit({ type: 'tunnel-close', id, target: target.authority, intercepted: true, durationMs: performance.now() - started });
    });
    const first = (chunk: Buffer) => {
      if (chunk[0] !== 0x16) {
        // Not a TLS handshake record (RFC 8446 §5.1: content type 22).
        const text = chunk.subarray(0, 64).toString('latin1');
        if (HTTP_METHOD.test(text)) {
          fail(`${target.authority} is intercepted, but the client sent plain HTTP after CONNECT instead of a TLS handshake; closed`);
          writeRawResponse(client, 400, `Bad request: this CONNECT tunnel to ${target.authority} expects TLS (an https:// URL), not plain HTTP.`);
        } else {
          fail(`${target.authority} is intercepted, but the client sent ${chunk.length} bytes that are not a TLS handshake after CONNECT; closed`);
          client.destroy();
        }
        return;
      }
      client.pause();
      client.unshift(chunk);
      this.leaves.context(target.hostname).then(
        (context) => this.handshake(target, client, context, site, idleMs, fail, serve),
        (err: Error) => {
          fail(`cannot make a certificate for ${target.hostname}: ${err.message}`);
          client.destroy();
        },
      );
    };
    if (head.length > 0) first(head);
    else client.once('data', first);
  }

  private handshake(target: ConnectTarget, client: net.Socket, context: tls.SecureContext, site: string, idleMs: number, fail: (message: string, code?: string) => void, serve: (socket: tls.TLSSocket) => void): void {
    if (client.destroyed) return;
    const connectIsAddress = net.isIP(target.hostname) !== 0;
    let sniProblem: string | null = null;
    const socket = new tls.TLSSocket(client, {
      isServer: true,
      secureContext: context,
      ALPNProtocols: ['http/1.1'],
      SNICallback: (servername, done) => {
        if (servername.toLowerCase() === target.hostname.toLowerCase()) return done(null, context);
        if (!connectIsAddress) {
          // A name other than the one the client asked us to connect to: serving it would send its requests to the wrong site.
          sniProblem = `the TLS server name "${servername}" is not the CONNECT host ${target.hostname}`;
          return done(new Error(sniProblem));
        }
        this.leaves.context(servername).then((c) => done(null, c), (err: Error) => done(err));
      },
    });
    // The raw socket's own idle timer would no longer see the traffic: the TLS socket keeps it.
    client.setTimeout(0);
    socket.setTimeout(idleMs, () => socket.destroy());
    let secured = false;
    socket.once('secure', () => {
      secured = true;
      markIntercepted(socket, site);
      serve(socket);
    });
    socket.once('end', () => {
      if (secured) return;
      // Node's TLS client (npm, undici) rejects a certificate it does not trust by closing, without an alert.
      fail(`the client closed its connection to ${target.hostname} during the TLS handshake: if it rejected the proxy's certificate (Node and npm say so only on their side), trust ${this.ca.certPath} (for npm: --cafile ${this.ca.bundlePath})`, CLIENT_CLOSED_UNUSED);
      socket.destroy();
    });
    socket.on('error', (err: NodeJS.ErrnoException) => {
      if (secured) return;
      if (err.code !== undefined && REJECTED_CERTIFICATE.has(err.code)) {
        fail(`the client rejected the proxy's certificate for ${target.hostname} (${err.code.replace(/^ERR_SSL_/, '')}): it does not trust the local CA. Trust ${this.ca.certPath} in that client (see caching-proxy ca), or add the host to https.tunnel`, CLIENT_REJECTED_CA);
      } else if (sniProblem !== null) {
        fail(`TLS handshake refused: ${sniProblem}`, 'ERR_TLS_SNI');
      } else if (err.code === 'ECONNRESET' || err.message.includes('socket disconnected')) {
        fail(`the client closed its connection to ${target.hostname} during the TLS handshake: if it rejected the proxy's certificate, trust ${this.ca.certPath}`, CLIENT_CLOSED_UNUSED);
      } else {
        fail(`TLS handshake with the client for ${target.hostname} failed: ${err.message}`, err.code);
      }
      socket.destroy();
    });
    socket.once('close', () => client.destroy());
  }
}

