import type * as vscode from 'vscode';
import type { CachedUrlsView } from '../cachedUrlsView';
import type { ProxyLifecycle } from '../lifecycle';
import type { UserOutput } from '../output';

/** What every command group is given: the parts of the extension a command may act on. */
export interface ExtensionParts {
  readonly context: vscode.ExtensionContext;
  readonly proxy: ProxyLifecycle;
  readonly output: UserOutput;
  readonly view: CachedUrlsView;
  /** Ties a listener or resource of a group to the extension's lifetime. */
  register<T extends vscode.Disposable>(disposable: T): T;
}

/** One contributed command: its id (as in package.json) and what it does. */
export interface Command {
  readonly id: string;
  run(...args: never[]): unknown;
}

/** A command group: a file under commands/ exporting one of these; extension.ts lists them. */
export type CommandGroup = (parts: ExtensionParts) => Command[];
