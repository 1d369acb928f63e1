import * as vscode from 'vscode';
import type { CacheEntrySummary } from '../cache/types';
import { formatBytes, type ProxyEvent } from '../core/events';
import { describeEntry, entryHost, entryLabel, formatDuration } from './format';
import type { ProxyController } from './proxyController';

export type CacheNode = HostNode | EntryNode;

export interface HostNode {
  kind: 'host';
  host: string;
  entries: CacheEntrySummary[];
}

export interface EntryNode {
  kind: 'entry';
  host: string;
  entry: CacheEntrySummary;
}

/** Waits this long after the last cache event before re-listing, but never longer than MAX_WAIT_MS. */
const DEBOUNCE_MS = 250;
const MAX_WAIT_MS = 1_000;

/** Events after which the list of stored responses may differ. */
function changesListing(e: ProxyEvent): boolean {
  return e.type === 'cache' || e.type === 'response' || e.type === 'listening' || e.type === 'closed';
}

/**
 * "Cached URLs": hosts, then the URLs stored for each. Re-lists from the proxy process only when
 * its events say something changed (debounced), never on a timer.
 */
export class CachedUrlsTreeProvider implements vscode.TreeDataProvider<CacheNode>, vscode.Disposable {
  private readonly changed = new vscode.EventEmitter<CacheNode | undefined>();
  readonly onDidChangeTreeData = this.changed.event;
  private readonly refreshed = new vscode.EventEmitter<CacheEntrySummary[]>();
  /** Fires with the new listing each time it has been fetched. */
  readonly onDidRefresh = this.refreshed.event;

  private entries: CacheEntrySummary[] = [];
  private stale = true;
  private filterText = '';
  private debounce: NodeJS.Timeout | null = null;
  private firstPendingAt = 0;
  private fetching: Promise<CacheEntrySummary[]> | null = null;
  private readonly disposables: vscode.Disposable[] = [];

  /** Whether anyone can see the tree; while hidden, changes only mark the listing stale. */
  isVisible: () => boolean = () => true;

  constructor(private readonly controller: ProxyController) {
    const onEvents = (events: ProxyEvent[]) => {
      if (events.some(changesListing)) this.scheduleRefresh();
    };
    const onState = () => this.refresh();
    controller.on('events', onEvents);
    controller.on('state', onState);
    this.disposables.push(
      new vscode.Disposable(() => {
        controller.off('events', onEvents);
        controller.off('state', onState);
      }),
      this.changed,
      this.refreshed,
    );
  }

  get filter(): string {
    return this.filterText;
  }

  setFilter(text: string): void {
    this.filterText = text.trim();
    void vscode.commands.executeCommand('setContext', 'cachingProxy.filtered', this.filterText !== '');
    this.changed.fire(undefined);
  }

  /** The last listing fetched from the proxy. */
  get snapshot(): readonly CacheEntrySummary[] {
    return this.entries;
  }

  /** Marks the listing stale and redraws now (title "Refresh", purge, state changes). */
  refresh(): void {
    if (this.debounce) clearTimeout(this.debounce);
    this.debounce = null;
    this.firstPendingAt = 0;
    this.stale = true;
    this.changed.fire(undefined);
    // Listing 10,000 entries over IPC is not free: only fetch for a visible view (getChildren fetches on show).
    if (this.isVisible()) void this.load();
  }

  private scheduleRefresh(): void {
    const now = Date.now();
    if (!this.firstPendingAt) this.firstPendingAt = now;
    if (this.debounce) clearTimeout(this.debounce);
    const wait = Math.min(DEBOUNCE_MS, Math.max(0, this.firstPendingAt + MAX_WAIT_MS - now));
    this.debounce = setTimeout(() => this.refresh(), wait);
  }

  /** Fetches the listing (once for concurrent callers). */
  load(): Promise<CacheEntrySummary[]> {
    if (!this.stale && !this.fetching) return Promise.resolve(this.entries);
    if (this.fetching) return this.fetching;
    this.stale = false;
    this.fetching = (async () => {
      let entries: CacheEntrySummary[] = [];
      if (this.controller.state === 'running') {
        try {
          entries = await this.controller.list();
        } catch {
          entries = [];
        }
      }
      this.entries = entries;
      void vscode.commands.executeCommand('setContext', 'cachingProxy.cacheEmpty', entries.length === 0);
      this.refreshed.fire(entries);
      return entries;
    })().finally(() => {
      this.fetching = null;
    });
    return this.fetching;
  }

  async getChildren(element?: CacheNode): Promise<CacheNode[]> {
    if (element?.kind === 'host') {
      return element.entries.map((entry) => ({ kind: 'entry', host: element.host, entry }));
    }
    if (element) return [];
    if (this.controller.state !== 'running') return [];
    const entries = await this.load();
    const needle = this.filterText.toLowerCase();
    const shown = needle ? entries.filter((e) => e.url.toLowerCase().includes(needle)) : entries;
    const byHost = new Map<string, CacheEntrySummary[]>();
    for (const entry of shown) {
      const host = entryHost(entry);
      byHost.set(host, [...(byHost.get(host) ?? []), entry]);
    }
    return [...byHost.keys()]
      .sort((a, b) => a.localeCompare(b))
      .map((host) => ({
        kind: 'host',
        host,
        entries: byHost.get(host)!.sort((a, b) => entryLabel(a).localeCompare(entryLabel(b))),
      }));
  }

  getTreeItem(node: CacheNode): vscode.TreeItem {
    if (node.kind === 'host') {
      const item = new vscode.TreeItem(node.host, vscode.TreeItemCollapsibleState.Expanded);
      item.id = `host:${node.host}`;
      item.contextValue = 'host';
      item.iconPath = new vscode.ThemeIcon('globe');
      const bytes = node.entries.reduce((sum, e) => sum + e.size, 0);
      item.description = `${node.entries.length} ${node.entries.length === 1 ? 'URL' : 'URLs'}`;
      item.tooltip = `${node.host}: ${node.entries.length} stored ${node.entries.length === 1 ? 'response' : 'responses'}, ${formatBytes(bytes)}`;
      return item;
    }
    const e = node.entry;
    const item = new vscode.TreeItem(entryLabel(e), vscode.TreeItemCollapsibleState.None);
    item.id = `entry:${e.key}`;
    item.description = describeEntry(e);
    item.contextValue = e.fresh ? 'entry.fresh' : 'entry.stale';
    item.iconPath = new vscode.ThemeIcon(e.fresh ? 'pass' : 'history', new vscode.ThemeColor(e.fresh ? 'testing.iconPassed' : 'list.warningForeground'));
    item.tooltip = entryTooltip(e);
    item.command = { command: 'cachingProxy.openEntry', title: 'Open', arguments: [node] };
    return item;
  }

  getParent(node: CacheNode): CacheNode | undefined {
    if (node.kind === 'host') return undefined;
    return { kind: 'host', host: node.host, entries: this.entries.filter((e) => entryHost(e) === node.host) };
  }

  dispose(): void {
    if (this.debounce) clearTimeout(this.debounce);
    for (const d of this.disposables) d.dispose();
  }
}

function entryTooltip(e: CacheEntrySummary): vscode.MarkdownString {
  const md = new vscode.MarkdownString();
  md.appendMarkdown(`**${e.method} ${escapeMd(e.url)}**\n\n`);
  md.appendMarkdown(`Status ${e.status} · ${e.fresh ? `fresh for ${formatDuration(e.ttl)}` : `stale for ${formatDuration(e.ttl)}`} · ${e.hits} hits\n\n`);
  md.appendMarkdown(`Stored ${new Date(e.storedAt).toLocaleString()}${e.rule ? ` under the rule \`${e.rule}\`` : ''}\n\n`);
  const headers = Object.entries(e.headers);
  if (e.contentType && !headers.some(([k]) => k.toLowerCase() === 'content-type')) headers.unshift(['content-type', e.contentType]);
  if (headers.length) md.appendCodeblock(headers.map(([k, v]) => `${k}: ${v}`).join('\n'), 'http');
  return md;
}

function escapeMd(s: string): string {
  return s.replace(/[\\`*_{}[\]()#+\-.!|<>]/g, '\\$&');
}
