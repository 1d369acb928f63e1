import * as http from 'node:http';
import * as https from 'node:https';
import * as net from 'node:net';
import type { Duplex } from 'node:stream';
import * as tls from 'node:tls';
import { ProxyError } from '../exchange';

/**
 * Keep-alive TLS connections to https origins through the upstream proxy: CONNECT first, then
 * TLS end to end, verified as a direct connection is. (Sending the upstream proxy an absolute
 * https:// request instead would hand it the decrypted traffic in the clear.)
 */
export class UpstreamTunnelAgent extends https.Agent {
  constructor(
    private readonly proxy: URL,
    private readonly authorization: string | null,
    private readonly timeoutMs: number,
    options: https.AgentOptions,
  ) {
    super(options);
  }

  override createConnection(options: http.ClientRequestArgs, callback?: (err: Error | null, stream: Duplex) => void): Duplex | null | undefined {
    const host = (options.host ?? 'localhost').replace(/^\[|\]$/g, '');
    const authority = `${net.isIPv6(host) ? `[${host}]` : host}:${options.port ?? 443}`;
    const proxyName = this.proxy.host;
    const connect = http.request({
      host: this.proxy.hostname.replace(/^\[|\]$/g, ''),
      port: this.proxy.port || 80,
      method: 'CONNECT',
      path: authority,
      headers: { host: authority, ...(this.authorization ? { 'proxy-authorization': this.authorization } : {}) },
      agent: false,
    });
    const fail = (err: Error) => callback?.(err, undefined as unknown as Duplex);
    connect.setTimeout(this.timeoutMs, () => connect.destroy(new ProxyError(504, `upstream proxy ${proxyName} did not answer CONNECT ${authority} in time`, 'ETIMEDOUT')));
    connect.once('connect', (res, socket) => {
      connect.setTimeout(0);
      if (res.statusCode !== 200) {
        socket.destroy();
        return fail(new ProxyError(502, `upstream proxy ${proxyName} refused CONNECT ${authority} with ${res.statusCode} ${res.statusMessage ?? ''}`.trim()));
      }
      const secure = tls.connect({ ...(options as tls.ConnectionOptions), socket, servername: net.isIP(host) ? undefined : host });
      callback?.(null, secure);
    });
    connect.once('error', fail);
    connect.end();
    return undefined;
  }
}
