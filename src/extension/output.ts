import * as vscode from 'vscode';
import { Disposable } from './dispose';

export type LogLevel = 'trace' | 'debug' | 'info' | 'warn' | 'error';

export interface ShownNotification {
  level: 'info' | 'warning' | 'error';
  message: string;
  actions: string[];
}

export interface LogLine {
  level: LogLevel;
  text: string;
}

/**
 * What the extension tells the user: the "Caching Proxy" output channel and notifications.
 * Both are also events of the extension's API, for other extensions (and its own tests) to follow.
 */
export class UserOutput extends Disposable {
  private readonly channel = this._register(vscode.window.createOutputChannel('Caching Proxy', { log: true }));
  private readonly logged = this._register(new vscode.EventEmitter<LogLine>());
  private readonly notified = this._register(new vscode.EventEmitter<ShownNotification>());
  readonly onDidLog = this.logged.event;
  readonly onDidNotify = this.notified.event;

  log(level: LogLevel, text: string): void {
    this.channel[level](text);
    this.logged.fire({ level, text });
  }

  showLog(): void {
    this.channel.show(true);
  }

  notify(level: ShownNotification['level'], message: string, ...actions: string[]): Thenable<string | undefined> {
    this.notified.fire({ level, message, actions });
    if (level === 'error') return vscode.window.showErrorMessage(message, ...actions);
    if (level === 'warning') return vscode.window.showWarningMessage(message, ...actions);
    return vscode.window.showInformationMessage(message, ...actions);
  }
}
