import * as vscode from 'vscode';
import type { CachedUrlsTreeProvider, CacheNode } from './cachedUrlsTree';
import { CachedUrlsView } from './cachedUrlsView';
import type { CommandGroup, ExtensionParts } from './commands/command';
import { harCommands } from './commands/harCommands';
import { proxyCommands } from './commands/proxyCommands';
import { treeCommands } from './commands/treeCommands';
import { trustCommands } from './commands/trust';
import { Disposable } from './dispose';
import { ProxyLifecycle } from './lifecycle';
import { UserOutput, type LogLine, type ShownNotification } from './output';
import type { ProxyController } from './proxyController';
import type { ExtensionSettings } from './settings';

export type { LogLine, ShownNotification } from './output';

/** The command groups under commands/, one file each. */
const COMMAND_GROUPS: CommandGroup[] = [proxyCommands, treeCommands, harCommands, trustCommands];

/** What activate() returns: what the user sees, for other extensions and for this one's tests. */
export interface CachingProxyApi {
  readonly controller: ProxyController;
  readonly tree: CachedUrlsTreeProvider;
  readonly treeView: vscode.TreeView<CacheNode>;
  readonly terminalEnv: vscode.GlobalEnvironmentVariableCollection;
  /** Each notification as it is shown, with its action buttons. */
  readonly onDidNotify: vscode.Event<ShownNotification>;
  /** Each line written to the "Caching Proxy" output channel. */
  readonly onDidLog: vscode.Event<LogLine>;
  statusBarText(): string;
  /** The settings in force (the last valid ones). */
  settings(): ExtensionSettings | null;
  /** Resolves once every settings change seen so far has been applied. */
  settled(): Promise<void>;
}

class CachingProxyExtension extends Disposable {
  readonly output = this._register(new UserOutput());
  readonly proxy: ProxyLifecycle;
  readonly view: CachedUrlsView;

  constructor(private readonly context: vscode.ExtensionContext) {
    super();
    this.proxy = this._register(new ProxyLifecycle(context, this.output));
    this.view = this._register(new CachedUrlsView(this.proxy));
    const parts: ExtensionParts = { context, proxy: this.proxy, output: this.output, view: this.view, register: (d) => this._register(d) };
    for (const group of COMMAND_GROUPS) {
      for (const command of group(parts)) this._register(vscode.commands.registerCommand(command.id, command.run as (...args: unknown[]) => unknown));
    }
  }

  api(): CachingProxyApi {
    return {
      controller: this.proxy.controller,
      tree: this.view.tree,
      treeView: this.view.treeView,
      terminalEnv: this.context.environmentVariableCollection,
      onDidNotify: this.output.onDidNotify,
      onDidLog: this.output.onDidLog,
      statusBarText: () => this.proxy.statusBar.text,
      settings: () => this.proxy.settings,
      settled: () => this.proxy.settled(),
    };
  }
}

let instance: CachingProxyExtension | null = null;

export async function activate(context: vscode.ExtensionContext): Promise<CachingProxyApi> {
  instance = new CachingProxyExtension(context);
  context.subscriptions.push(instance);
  await instance.proxy.activate();
  return instance.api();
}

export async function deactivate(): Promise<void> {
  // Stop cleanly while the editor waits; dispose() (via subscriptions) is the hard fallback.
  await instance?.proxy.shutdown();
  instance = null;
}
