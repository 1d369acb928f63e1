import type * as vscode from 'vscode';

/** Hosts a terminal's clients should reach directly, not through the local proxy. */
const ALWAYS_DIRECT = ['localhost', '127.0.0.1', '::1'];

/** Points new integrated terminals at the proxy while it runs. */
export class TerminalProxyEnv {
  constructor(private readonly collection: vscode.GlobalEnvironmentVariableCollection) {
    // A reload must not bring back variables for a proxy that is no longer running.
    collection.persistent = false;
  }

  apply(proxyUrl: string, noProxy: readonly string[]): void {
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
  }

  clear(): void {
    this.collection.clear();
    this.collection.description = undefined;
  }
}
