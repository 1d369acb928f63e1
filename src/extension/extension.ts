import { mkdir } from 'node:fs/promises';
import * as net from 'node:net';
import * as path from 'node:path';
import * as vscode from 'vscode';
import { eventLevel, formatEvent, type ProxyEvent } from '../core/events';
import { CachedUrlsTreeProvider, type CacheNode, type EntryNode } from './cachedUrlsTree';
import { StoredResponseDocuments, ENTRY_SCHEME } from './entryDocument';
import { curlCommand, describeEntry } from './format';
import { ProxyController, ProxyStartError, ProxyRequestError } from './proxyController';
import { readSettings, SECTION, SettingsError, type ExtensionSettings } from './settings';
import { ProxyStatusBar } from './statusBar';
import { TerminalProxyEnv } from './terminalEnv';

export interface ShownNotification {
  level: 'info' | 'warning' | 'error';
  message: string;
  actions: string[];
}

/** What activate() returns: used by the extension's own tests to look at what the user sees. */
export interface CachingProxyApi {
  readonly controller: ProxyController;
  readonly tree: CachedUrlsTreeProvider;
  readonly treeView: vscode.TreeView<CacheNode>;
  readonly notifications: readonly ShownNotification[];
  readonly logLines: readonly string[];
  readonly terminalEnv: vscode.GlobalEnvironmentVariableCollection;
  statusBarText(): string;
  /** The settings in force (the last valid ones). */
  settings(): ExtensionSettings | null;
  /** Resolves once every settings change seen so far has been applied. */
  settled(): Promise<void>;
}

const LOG_LINES_KEPT = 2_000;

class CachingProxyExtension implements vscode.Disposable {
  readonly controller: ProxyController;
  readonly log = vscode.window.createOutputChannel('Caching Proxy', { log: true });
  readonly tree: CachedUrlsTreeProvider;
  readonly treeView: vscode.TreeView<CacheNode>;
  readonly documents: StoredResponseDocuments;
  readonly statusBar = new ProxyStatusBar();
  readonly terminal: TerminalProxyEnv;
  readonly notifications: ShownNotification[] = [];
  readonly logLines: string[] = [];
  private current: ExtensionSettings | null = null;
  private hits = 0;
  /** Settings changes are applied one after another. */
  private applying: Promise<void> = Promise.resolve();
  private readonly disposables: vscode.Disposable[] = [];

  constructor(private readonly context: vscode.ExtensionContext) {
    this.controller = new ProxyController({ entry: context.asAbsolutePath(path.join('dist', 'cli.js')) });
    this.tree = new CachedUrlsTreeProvider(this.controller);
    this.treeView = vscode.window.createTreeView('cachingProxy.cachedUrls', { treeDataProvider: this.tree, showCollapseAll: true });
    this.documents = new StoredResponseDocuments(this.controller);
    this.terminal = new TerminalProxyEnv(context.environmentVariableCollection);
    this.terminal.clear();
    this.disposables.push(
      this.log,
      this.tree,
      this.treeView,
      this.documents,
      this.statusBar,
      vscode.workspace.registerTextDocumentContentProvider(ENTRY_SCHEME, this.documents),
      vscode.workspace.onDidChangeConfiguration((e) => {
        if (e.affectsConfiguration(SECTION)) this.applySettings();
      }),
      vscode.workspace.onDidGrantWorkspaceTrust(() => this.applySettings()),
      this.treeView.onDidChangeVisibility((e) => {
        if (e.visible) this.tree.refresh();
      }),
    );
    this.tree.isVisible = () => this.treeView.visible;
    this.controller.on('events', (events, dropped) => this.onEvents(events, dropped));
    this.controller.on('state', () => this.onState());
    this.controller.on('output', (text) => {
      for (const line of text.split('\n')) if (line.trim()) this.writeLog('warn', `[proxy process] ${line}`);
    });
    this.controller.on('exit', (exit) => {
      this.terminal.clear();
      if (exit.expected) return;
      const how = exit.signal ? `signal ${exit.signal}` : `exit code ${exit.code}`;
      this.writeLog('error', `the proxy process stopped unexpectedly (${how})${exit.stderr ? `:\n${exit.stderr.trim()}` : ''}`);
      void this.notify('error', `Caching Proxy stopped unexpectedly (${how}). See the log for details.`, 'Start Proxy', 'Show Log').then((choice) => {
        if (choice === 'Start Proxy') void this.start();
        if (choice === 'Show Log') this.log.show(true);
      });
    });
    this.registerCommands();
    this.onState();
  }

  async activate(): Promise<void> {
    this.current = this.tryReadSettings();
    if (this.current?.autoStart) await this.start();
  }

  // ---- settings -------------------------------------------------------------------------

  private defaultCacheDir(): string {
    return path.join(this.context.globalStorageUri.fsPath, 'cache');
  }

  /** Reads the settings; on a bad value tells the user and returns null (callers keep the last good ones). */
  private tryReadSettings(): ExtensionSettings | null {
    try {
      return readSettings(vscode.workspace.getConfiguration(SECTION), { trusted: vscode.workspace.isTrusted, defaultCacheDir: this.defaultCacheDir() });
    } catch (err) {
      if (!(err instanceof SettingsError)) throw err;
      const kept = this.controller.state === 'running' ? ' The proxy keeps running with the previous settings.' : '';
      const message = `Caching Proxy: invalid setting. ${err.problems.join(' ')}${kept}`;
      this.writeLog('error', message);
      void this.notify('error', message, 'Open Settings').then((choice) => {
        if (choice) void vscode.commands.executeCommand('workbench.action.openSettings', `@ext:${this.context.extension.id}`);
      });
      return null;
    }
  }

  private applySettings(): void {
    this.applying = this.applying.then(() => this.applySettingsNow()).catch((err: Error) => this.writeLog('error', `applying settings: ${err.message}`));
  }

  private async applySettingsNow(): Promise<void> {
    const next = this.tryReadSettings();
    if (!next) return;
    const prev = this.current;
    this.current = next;
    if (this.controller.state !== 'running') return;
    if (JSON.stringify(prev?.config) !== JSON.stringify(next.config)) {
      try {
        await this.prepareCacheDir(next);
        const address = await this.controller.update(next.config);
        this.writeLog('info', `settings applied; listening on ${address.url}`);
      } catch (err) {
        const e = err as ProxyRequestError;
        if (e.code === 'EADDRINUSE') {
          this.current = { ...next, config: this.controller.config ?? next.config };
          void this.portInUse(next.config.port, next.config.host, ` It keeps listening on ${this.controller.address?.url}.`);
        } else {
          void this.notify('error', `Caching Proxy: cannot apply the new settings: ${e.message}`);
        }
        this.writeLog('error', `settings not applied: ${e.message}`);
      }
    }
    this.updateTerminalEnv();
    this.onState();
  }

  private async prepareCacheDir(settings: ExtensionSettings): Promise<void> {
    // A dir that cannot be made is not fatal: the cache says so (a notice) and keeps to memory.
    if (settings.config.cache.dir) await mkdir(settings.config.cache.dir, { recursive: true }).catch(() => {});
  }

  // ---- lifecycle --------------------------------------------------------------------------

  async start(): Promise<void> {
    if (this.controller.state === 'running') {
      void this.notify('info', `Caching Proxy is already running on ${this.controller.address?.url}.`);
      return;
    }
    if (this.controller.state !== 'stopped') return;
    await this.applying;
    const settings = this.tryReadSettings() ?? this.current;
    if (!settings) return;
    this.current = settings;
    try {
      await this.prepareCacheDir(settings);
      await this.controller.start(settings.config);
      this.hits = 0;
      this.writeLog('info', `started; cache in ${settings.config.cache.dir ?? 'memory only'}`);
      this.updateTerminalEnv();
      this.onState();
    } catch (err) {
      const e = err as ProxyStartError;
      this.writeLog('error', `cannot start: ${e.message}`);
      if (e.code === 'EADDRINUSE') void this.portInUse(settings.config.port, settings.config.host, '');
      else void this.notify('error', `Caching Proxy could not start: ${e.message}`, 'Show Log').then((c) => c && this.log.show(true));
    }
  }

  async stop(): Promise<void> {
    if (this.controller.state === 'stopped') return;
    this.terminal.clear();
    await this.controller.stop();
    this.writeLog('info', 'stopped');
    this.onState();
  }

  private async portInUse(port: number, host: string, extra: string): Promise<void> {
    const choice = await this.notify('error', `Caching Proxy: port ${port} on ${host} is already in use by another program.${extra}`, 'Use a Free Port', 'Open Setting');
    if (choice === 'Open Setting') {
      await vscode.commands.executeCommand('workbench.action.openSettings', `${SECTION}.port`);
    } else if (choice === 'Use a Free Port') {
      const free = await findFreePort(host);
      const inspected = vscode.workspace.getConfiguration(SECTION).inspect<number>('port');
      const target = inspected?.workspaceValue !== undefined ? vscode.ConfigurationTarget.Workspace : vscode.ConfigurationTarget.Global;
      await vscode.workspace.getConfiguration(SECTION).update('port', free, target);
      await this.applying;
      if (this.controller.state === 'stopped') await this.start();
    }
  }

  private updateTerminalEnv(): void {
    const address = this.controller.address;
    if (this.controller.state === 'running' && address && this.current?.injectEnv !== false) {
      this.terminal.apply(address.url, this.current?.config.noProxy ?? []);
    } else {
      this.terminal.clear();
    }
  }

  // ---- events -----------------------------------------------------------------------------

  private onEvents(events: ProxyEvent[], dropped: number): void {
    if (events.some((e) => e.type === 'response' || e.type === 'cache')) this.scheduleHitsUpdate();
    for (const e of events) {
      if (e.type === 'listening' || e.type === 'closed') continue; // the extension logs start/stop itself
      this.writeLog(eventLevel(e), formatEvent(e));
      // Notices are rare, once-only conditions (cache dir not writable, disk full): worth a toast.
      if (e.type === 'notice' && (e.level === 'warn' || e.level === 'error')) {
        void this.notify(e.level === 'error' ? 'error' : 'warning', `Caching Proxy: ${e.message}`, 'Show Log').then((c) => {
          if (c) this.log.show(true);
        });
      }
    }
    if (dropped > 0) this.writeLog('warn', `${dropped} events not shown: too many at once`);
  }

  private writeLog(level: 'trace' | 'debug' | 'info' | 'warn' | 'error', line: string): void {
    this.log[level](line);
    this.logLines.push(`${level} ${line}`);
    if (this.logLines.length > LOG_LINES_KEPT) this.logLines.splice(0, this.logLines.length - LOG_LINES_KEPT);
  }

  private hitsTimer: NodeJS.Timeout | null = null;

  /** The hit count in the status bar follows events, at most a few times a second. */
  private scheduleHitsUpdate(): void {
    this.hitsTimer ??= setTimeout(() => {
      this.hitsTimer = null;
      void this.updateHits();
    }, 300);
  }

  private async updateHits(): Promise<void> {
    if (this.controller.state !== 'running') return;
    try {
      this.hits = (await this.controller.stats()).hits;
    } catch {
      return;
    }
    this.onState();
  }

  private onState(): void {
    const state = this.controller.state;
    const address = this.controller.address;
    this.statusBar.show(state, address ? `${address.host.includes(':') ? `[${address.host}]` : address.host}:${address.port}` : null, this.hits);
    void vscode.commands.executeCommand('setContext', 'cachingProxy.state', state);
    void vscode.commands.executeCommand('setContext', 'cachingProxy.running', state === 'running');
    this.treeView.description = state === 'running' ? address?.url : 'stopped';
    if (state !== 'running') this.terminal.clear();
  }

  // ---- notifications ----------------------------------------------------------------------

  notify(level: ShownNotification['level'], message: string, ...actions: string[]): Thenable<string | undefined> {
    this.notifications.push({ level, message, actions });
    if (level === 'error') return vscode.window.showErrorMessage(message, ...actions);
    if (level === 'warning') return vscode.window.showWarningMessage(message, ...actions);
    return vscode.window.showInformationMessage(message, ...actions);
  }

  // ---- commands ---------------------------------------------------------------------------

  private registerCommands(): void {
    const register = (id: string, fn: (...args: never[]) => unknown) =>
      this.disposables.push(vscode.commands.registerCommand(id, fn as (...args: unknown[]) => unknown));
    const requireRunning = (): boolean => {
      if (this.controller.state === 'running') return true;
      void this.notify('warning', 'Caching Proxy is not running. Start it first.', 'Start Proxy').then((c) => {
        if (c) void this.start();
      });
      return false;
    };
    const entryOf = (node: CacheNode | undefined): EntryNode | undefined => (node?.kind === 'entry' ? node : this.treeView.selection.find((n): n is EntryNode => n.kind === 'entry'));

    register('cachingProxy.start', () => this.start());
    register('cachingProxy.stop', () => this.stop());
    register('cachingProxy.restart', async () => {
      await this.stop();
      await this.start();
    });
    register('cachingProxy.clearCache', async () => {
      if (!requireRunning()) return;
      const count = await this.controller.query({ op: 'purgeAll' });
      this.tree.refresh();
      void this.notify('info', `Caching Proxy: cleared ${count} stored ${count === 1 ? 'response' : 'responses'}.`);
    });
    register('cachingProxy.copyProxyUrl', async () => {
      const url = this.controller.address?.url;
      if (!url || !requireRunning()) return;
      await vscode.env.clipboard.writeText(url);
      void this.notify('info', `Copied ${url}`);
    });
    register('cachingProxy.showLog', () => this.log.show(true));
    register('cachingProxy.showActions', async () => {
      const running = this.controller.state === 'running';
      const items: (vscode.QuickPickItem & { command: string })[] = running
        ? [
            { label: '$(debug-stop) Stop Proxy', command: 'cachingProxy.stop', description: this.controller.address?.url },
            { label: '$(debug-restart) Restart Proxy', command: 'cachingProxy.restart' },
            { label: '$(copy) Copy Proxy URL', command: 'cachingProxy.copyProxyUrl' },
            { label: '$(clear-all) Clear Cache', command: 'cachingProxy.clearCache' },
          ]
        : [{ label: '$(play) Start Proxy', command: 'cachingProxy.start' }];
      items.push(
        { label: '$(list-tree) Show Cached URLs', command: 'cachingProxy.cachedUrls.focus' },
        { label: '$(output) Show Log', command: 'cachingProxy.showLog' },
        { label: '$(settings-gear) Open Settings', command: 'cachingProxy.openSettings' },
      );
      const picked = await vscode.window.showQuickPick(items, { title: 'Caching Proxy', placeHolder: running ? `Listening on ${this.controller.address?.url}` : 'Stopped' });
      if (picked) await vscode.commands.executeCommand(picked.command);
    });
    register('cachingProxy.openSettings', () => vscode.commands.executeCommand('workbench.action.openSettings', `@ext:${this.context.extension.id}`));
    register('cachingProxy.refresh', () => this.tree.refresh());
    register('cachingProxy.filter', async () => {
      const text = await vscode.window.showInputBox({ title: 'Filter Cached URLs', prompt: 'Show URLs containing this text (empty shows all)', value: this.tree.filter });
      if (text === undefined) return;
      this.applyFilter(text);
    });
    register('cachingProxy.clearFilter', () => this.applyFilter(''));
    register('cachingProxy.openEntry', async (node?: CacheNode) => {
      const entry = entryOf(node);
      if (!entry) return;
      let doc = await vscode.workspace.openTextDocument(StoredResponseDocuments.uriFor(entry.entry));
      // The status line and headers above the body are not valid JSON/HTML: no language diagnostics.
      if (doc.languageId !== 'plaintext') doc = await vscode.languages.setTextDocumentLanguage(doc, 'plaintext');
      await vscode.window.showTextDocument(doc, { preview: true });
    });
    register('cachingProxy.revalidateEntry', async (node?: CacheNode) => {
      const entry = entryOf(node);
      if (!entry || !requireRunning()) return;
      const summary = await this.controller.query({ op: 'revalidate', key: entry.entry.key });
      this.tree.refresh();
      this.documents.reload(StoredResponseDocuments.uriFor(entry.entry));
      if (summary) void this.notify('info', `Revalidated ${entry.entry.url}: ${describeEntry(summary)}`);
      else void this.notify('warning', `${entry.entry.url} is no longer cached.`);
    });
    register('cachingProxy.purgeEntry', async (node?: CacheNode) => {
      const entry = entryOf(node);
      if (!entry || !requireRunning()) return;
      await this.controller.query({ op: 'purge', key: entry.entry.key });
      this.tree.refresh();
    });
    register('cachingProxy.purgeHost', async (node?: CacheNode) => {
      const host = node?.host ?? this.treeView.selection[0]?.host;
      if (!host || !requireRunning()) return;
      const count = await this.controller.query({ op: 'purgeHost', host });
      this.tree.refresh();
      void this.notify('info', `Caching Proxy: purged ${count} stored ${count === 1 ? 'response' : 'responses'} of ${host}.`);
    });
    register('cachingProxy.copyEntryUrl', async (node?: CacheNode) => {
      const entry = entryOf(node);
      if (entry) await vscode.env.clipboard.writeText(entry.entry.url);
    });
    register('cachingProxy.copyAsCurl', async (node?: CacheNode) => {
      const entry = entryOf(node);
      const proxyUrl = this.controller.address?.url ?? `http://${this.current?.config.host ?? '127.0.0.1'}:${this.current?.config.port ?? 8899}`;
      if (entry) await vscode.env.clipboard.writeText(curlCommand(entry.entry, proxyUrl));
    });
  }

  private applyFilter(text: string): void {
    this.tree.setFilter(text);
    this.treeView.message = this.tree.filter ? `Showing URLs containing "${this.tree.filter}"` : undefined;
    this.treeView.title = this.tree.filter ? `Cached URLs matching "${this.tree.filter}"` : 'Cached URLs';
  }

  api(): CachingProxyApi {
    return {
      controller: this.controller,
      tree: this.tree,
      treeView: this.treeView,
      notifications: this.notifications,
      logLines: this.logLines,
      terminalEnv: this.context.environmentVariableCollection,
      statusBarText: () => this.statusBar.text,
      settings: () => this.current,
      settled: async () => {
        // Configuration events arrive asynchronously after update(): let them queue first.
        await new Promise((r) => setTimeout(r, 50));
        await this.applying;
      },
    };
  }

  async shutdown(): Promise<void> {
    await this.controller.stop(1_000).catch(() => this.controller.dispose());
  }

  dispose(): void {
    if (this.hitsTimer) clearTimeout(this.hitsTimer);
    this.controller.dispose();
    for (const d of this.disposables) d.dispose();
  }
}

function findFreePort(host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, host, () => {
      const port = (server.address() as net.AddressInfo).port;
      server.close(() => resolve(port));
    });
  });
}

let instance: CachingProxyExtension | null = null;

export async function activate(context: vscode.ExtensionContext): Promise<CachingProxyApi> {
  instance = new CachingProxyExtension(context);
  context.subscriptions.push(instance);
  await instance.activate();
  return instance.api();
}

export async function deactivate(): Promise<void> {
  // Stop cleanly while the editor waits; dispose() (via subscriptions) is the hard fallback.
  await instance?.shutdown();
  instance = null;
}
