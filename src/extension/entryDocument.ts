import * as vscode from 'vscode';
import type { CacheEntrySummary } from '../cache/types';
import { renderStoredResponse } from './format';
import type { ProxyController } from './proxyController';

export const ENTRY_SCHEME = 'caching-proxy';

/** A read-only document per stored response: caching-proxy:/host/path?key=<cache key>. */
export class StoredResponseDocuments implements vscode.TextDocumentContentProvider, vscode.Disposable {
  private readonly changed = new vscode.EventEmitter<vscode.Uri>();
  readonly onDidChange = this.changed.event;

  constructor(private readonly controller: ProxyController) {}

  static uriFor(entry: CacheEntrySummary): vscode.Uri {
    let host = 'entry';
    let pathPart = '/';
    try {
      const u = new URL(entry.url);
      host = u.host;
      pathPart = u.pathname === '/' ? '/index' : u.pathname;
    } catch {
      // keep the fallback name
    }
    return vscode.Uri.from({ scheme: ENTRY_SCHEME, path: `/${host}${pathPart}`, query: new URLSearchParams({ key: entry.key }).toString() });
  }

  /** Re-reads an open document (after a revalidation, say). */
  reload(uri: vscode.Uri): void {
    this.changed.fire(uri);
  }

  async provideTextDocumentContent(uri: vscode.Uri): Promise<string> {
    const key = new URLSearchParams(uri.query).get('key');
    if (!key) return 'No cache key in this address.';
    if (this.controller.state !== 'running') return 'Caching Proxy is stopped: start it to read stored responses.';
    const stored = await this.controller.read(key);
    if (!stored) return 'This response is no longer in the cache (purged, evicted or replaced).';
    return renderStoredResponse(stored);
  }

  dispose(): void {
    this.changed.dispose();
  }
}
