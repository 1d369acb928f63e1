import { execFile, execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Duplex } from 'node:stream';
import * as tls from 'node:tls';

/** A throwaway CA of the test's own, made by the openssl binary, and leaves it signs. */
export class TestCa {
  readonly dir = mkdtempSync(path.join(os.tmpdir(), 'cp-test-ca-'));
  readonly certPath = path.join(this.dir, 'ca.pem');
  private readonly keyPath = path.join(this.dir, 'ca.key');
  private serial = 1;

  constructor(name = 'Caching Proxy Test Origin CA') {
    execFileSync('openssl', [
      'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '2', '-subj', `/CN=${name}`,
      '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign', '-keyout', this.keyPath, '-out', this.certPath,
    ], { stdio: 'ignore' });
  }

  get cert(): string {
    return readFileSync(this.certPath, 'utf8');
  }

  /** A leaf for `san` (openssl syntax, e.g. "DNS:localhost,IP:127.0.0.1"); days < 0 makes it expired. */
  leaf(san: string, days = 1): { key: string; cert: string } {
    const base = path.join(this.dir, `leaf${this.serial++}`);
    execFileSync('openssl', ['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-subj', '/CN=test origin', '-keyout', `${base}.key`, '-out', `${base}.csr`], { stdio: 'ignore' });
    writeFileSync(`${base}.ext`, `subjectAltName=${san}\n`);
    execFileSync('openssl', ['x509', '-req', '-in', `${base}.csr`, '-CA', this.certPath, '-CAkey', this.keyPath, '-CAcreateserial', '-days', String(days), '-extfile', `${base}.ext`, '-out', `${base}.pem`], { stdio: 'ignore' });
    return { key: readFileSync(`${base}.key`, 'utf8'), cert: readFileSync(`${base}.pem`, 'utf8') };
  }
}

export interface TestHttpsOrigin {
  server: https.Server;
  port: number;
  /** Requests received, as "METHOD /path". */
  requests: string[];
  count(path: string): number;
  close(): Promise<void>;
}

/** A real HTTPS origin on 127.0.0.1 with the given certificate. */
export async function startHttpsOrigin(leaf: { key: string; cert: string }, handler: http.RequestListener): Promise<TestHttpsOrigin> {
  const requests: string[] = [];
  const server = https.createServer({ key: leaf.key, cert: leaf.cert }, (req, res) => {
    requests.push(`${req.method} ${req.url}`);
    handler(req, res);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    server,
    port: (server.address() as net.AddressInfo).port,
    requests,
    count: (p) => requests.filter((r) => r.endsWith(` ${p}`)).length,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** Opens a CONNECT tunnel through the proxy and returns the raw socket after the 200. */
export function connectTunnel(proxyPort: number, authority: string): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port: proxyPort, method: 'CONNECT', path: authority, headers: { host: authority }, agent: false });
    req.once('connect', (res, socket) => {
      if (res.statusCode !== 200) {
        socket.destroy();
        reject(new Error(`CONNECT ${authority}: ${res.statusCode}`));
      } else resolve(socket);
    });
    req.once('error', reject);
    req.end();
  });
}

/** TLS over a CONNECT tunnel, as a client trusting `ca` would open it. */
export async function tlsThroughProxy(proxyPort: number, authority: string, options: tls.ConnectionOptions): Promise<tls.TLSSocket> {
  const raw = await connectTunnel(proxyPort, authority);
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ socket: raw, ...options });
    socket.once('secureConnect', () => resolve(socket));
    socket.once('error', reject);
  });
}

/** Node's https.Agent reaching origins through the proxy's CONNECT (what a proxy-aware Node client does). */
export class ConnectAgent extends https.Agent {
  constructor(
    private readonly proxyPort: number,
    options: https.AgentOptions,
  ) {
    super({ ...options, keepAlive: false });
  }

  override createConnection(options: http.ClientRequestArgs, callback?: (err: Error | null, stream: Duplex) => void): Duplex | null | undefined {
    const host = options.host ?? 'localhost';
    connectTunnel(this.proxyPort, `${host}:${options.port}`).then(
      (raw) => {
        const socket = tls.connect({ ...(options as tls.ConnectionOptions), socket: raw, servername: net.isIP(host) ? undefined : host });
        callback?.(null, socket);
      },
      (err: Error) => callback?.(err, undefined as unknown as Duplex),
    );
    return undefined;
  }
}

/** The certificate the peer shows (openssl s_client through the proxy, as a user would look). */
export function certificateThroughProxy(proxyPort: number, host: string, port: number): Promise<string> {
  const args = ['s_client', '-proxy', `127.0.0.1:${proxyPort}`, '-connect', `${host}:${port}`, ...(net.isIP(host) ? ['-noservername'] : ['-servername', host]), '-showcerts'];
  return new Promise((resolve, reject) => {
    const child = execFile('openssl', args, { encoding: 'utf8', timeout: 10_000 }, (_err, out) => {
      const m = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/.exec(out);
      if (m) resolve(m[0]);
      else reject(new Error(`no certificate from openssl s_client:\n${out}`));
    });
    child.stdin?.end();
  });
}
