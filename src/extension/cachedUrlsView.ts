import * as vscode from 'vscode';
import { CachedUrlsTreeProvider, type CacheNode, type EntryNode } from './cachedUrlsTree';
import { Disposable } from './dispose';
import { ENTRY_SCHEME, StoredResponseDocuments } from './entryDocument';
import type { ProxyLifecycle } from './lifecycle';

/** The "Cached URLs" view, its filter, and the read-only documents of stored responses. */
export class CachedUrlsView extends Disposable {
  readonly tree: CachedUrlsTreeProvider;
  readonly treeView: vscode.TreeView<CacheNode>;
  readonly documents: StoredResponseDocuments;

  constructor(private readonly proxy: ProxyLifecycle) {
    super();
    const controller = proxy.controller;
    this.tree = this._register(new CachedUrlsTreeProvider(controller));
    this.treeView = this._register(vscode.window.createTreeView('cachingProxy.cachedUrls', { treeDataProvider: this.tree, showCollapseAll: true }));
    this.documents = this._register(new StoredResponseDocuments(controller));
    this._register(vscode.workspace.registerTextDocumentContentProvider(ENTRY_SCHEME, this.documents));
    this._register(
      this.treeView.onDidChangeVisibility((e) => {
        if (e.visible) this.tree.refresh();
      }),
    );
    this.tree.isVisible = () => this.treeView.visible;
    this._register(proxy.onDidChangeState(() => this.showState()));
    this.showState();
  }

  private showState(): void {
    const running = this.proxy.controller.state === 'running';
    this.treeView.description = running ? this.proxy.controller.address?.url : 'stopped';
  }

  /** The entry a command is about: the one it was invoked on, else the selected one. */
  entryOf(node: CacheNode | undefined): EntryNode | undefined {
    return node?.kind === 'entry' ? node : this.treeView.selection.find((n): n is EntryNode => n.kind === 'entry');
  }

  /** The host a command is about: the node's, else the selection's. */
  hostOf(node: CacheNode | undefined): string | undefined {
    return node?.host ?? this.treeView.selection[0]?.host;
  }

  applyFilter(text: string): void {
    this.tree.setFilter(text);
    this.treeView.message = this.tree.filter ? `Showing URLs containing "${this.tree.filter}"` : undefined;
    this.treeView.title = this.tree.filter ? `Cached URLs matching "${this.tree.filter}"` : 'Cached URLs';
  }
}
