import type * as vscode from 'vscode';

/** Hosts a terminal's clients should reach directly, not through the local proxy. */
const ALWAYS_DIRECT = ['localhost', '127.0.0.1', '::1'];

/** Variables that replace a tool's trust store: they get the merged bundle (system roots + our CA). */
export const BUNDLE_VARIABLES = [
  'SSL_CERT_FILE',
  'REQUESTS_CA_BUNDLE',
  'CURL_CA_BUNDLE',
  'GIT_SSL_CAINFO',
  'PIP_CERT',
  'AWS_CA_BUNDLE',
  'CARGO_HTTP_CAINFO',
  'DENO_CERT',
  'npm_config_cafile',
] as const;

/** Points new integrated terminals at the proxy while it runs. */
export class TerminalProxyEnv {
  constructor(private readonly collection: vscode.GlobalEnvironmentVariableCollection) {
    // A reload must not bring back variables for a proxy that is no longer running.
    collection.persistent = false;
  }

  /**
   * `ca` while HTTPS interception is on: Node adds our CA to its roots (NODE_EXTRA_CA_CERTS);
   * the tools whose variable replaces their trust store get the bundle of system roots plus ours,
   * so tunnelled hosts keep working for them. npm's machine-wide `cafile` replaces Node's trust,
   * hence npm_config_cafile too.
   */
  apply(proxyUrl: string, noProxy: readonly string[], ca: { cert: string; bundle: string } | null = null): void {
    const direct = [...new Set([...ALWAYS_DIRECT, ...noProxy])].join(',');
    const c = this.collection;
    c.description = `Routes HTTP and HTTPS traffic through Caching Proxy at ${proxyUrl}`;
    c.replace('HTTP_PROXY', proxyUrl);
    c.replace('HTTPS_PROXY', proxyUrl);
    c.replace('http_proxy', proxyUrl);
    c.replace('https_proxy', proxyUrl);
    c.replace('NO_PROXY', direct);
    c.replace('no_proxy', direct);
    // Node 24+ honours HTTP(S)_PROXY for fetch/http only when asked to.
    c.replace('NODE_USE_ENV_PROXY', '1');
    if (ca) {
      c.description = `Routes HTTP and HTTPS traffic through Caching Proxy at ${proxyUrl} and trusts its local CA (HTTPS interception)`;
      c.replace('NODE_EXTRA_CA_CERTS', ca.cert);
      for (const name of BUNDLE_VARIABLES) c.replace(name, ca.bundle);
    } else {
      c.delete('NODE_EXTRA_CA_CERTS');
      for (const name of BUNDLE_VARIABLES) c.delete(name);
    }
  }

  clear(): void {
    this.collection.clear();
    this.collection.description = undefined;
  }
}
