import type * as vscode from 'vscode';

/**
 * Owns disposables: whatever a subclass registers goes when it does, newest first (a view
 * before the provider it shows). Registering after disposal disposes at once, so a late
 * listener cannot leak.
 */
export abstract class Disposable implements vscode.Disposable {
  private readonly owned: vscode.Disposable[] = [];
  private disposed = false;

  protected get isDisposed(): boolean {
    return this.disposed;
  }

  protected _register<T extends vscode.Disposable>(value: T): T {
    if (this.disposed) value.dispose();
    else this.owned.push(value);
    return value;
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    const errors: unknown[] = [];
    while (this.owned.length) {
      try {
        this.owned.pop()!.dispose();
      } catch (err) {
        errors.push(err);
      }
    }
    if (errors.length === 1) throw errors[0];
    if (errors.length > 1) throw new AggregateError(errors, 'several disposables failed');
  }
}

/** A vscode.Disposable from a function (for timers and Node event listeners). */
export function toDisposable(fn: () => void): vscode.Disposable {
  return { dispose: fn };
}
