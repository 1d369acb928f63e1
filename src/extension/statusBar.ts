import * as vscode from 'vscode';
import type { ProxyState } from './proxyController';

/** "Caching Proxy: stopped" or "127.0.0.1:8899 · 12 hits"; a click opens the command quick pick. */
export class ProxyStatusBar implements vscode.Disposable {
  private readonly item = vscode.window.createStatusBarItem('cachingProxy.status', vscode.StatusBarAlignment.Left, 50);

  constructor() {
    this.item.name = 'Caching Proxy';
    this.item.command = 'cachingProxy.showActions';
    this.show('stopped', null, 0);
    this.item.show();
  }

  get text(): string {
    return this.item.text;
  }

  private shown: [ProxyState, string | null, number] = ['stopped', null, 0];
  /** The HAR file being recorded to, while recording. */
  private recordingTo: string | null = null;

  setRecording(file: string | null): void {
    this.recordingTo = file;
    this.show(...this.shown);
  }

  show(state: ProxyState, hostPort: string | null, hits: number): void {
    this.shown = [state, hostPort, hits];
    switch (state) {
      case 'running':
        if (this.recordingTo) {
          this.item.text = `$(record) ${hostPort} · recording · ${hits} ${hits === 1 ? 'hit' : 'hits'}`;
          this.item.tooltip = `Caching Proxy listening on ${hostPort}, recording every exchange to ${this.recordingTo}; ${hits} cache hits. Click for actions.`;
          break;
        }
        this.item.text = `$(radio-tower) ${hostPort} · ${hits} ${hits === 1 ? 'hit' : 'hits'}`;
        this.item.tooltip = `Caching Proxy listening on ${hostPort}; ${hits} cache hits. Click for actions.`;
        break;
      case 'starting':
        this.item.text = '$(loading~spin) Caching Proxy: starting';
        this.item.tooltip = 'Caching Proxy is starting';
        break;
      case 'stopping':
        this.item.text = '$(loading~spin) Caching Proxy: stopping';
        this.item.tooltip = 'Caching Proxy is stopping';
        break;
      case 'stopped':
        this.item.text = '$(circle-slash) Caching Proxy: stopped';
        this.item.tooltip = 'Caching Proxy is stopped. Click for actions.';
        break;
    }
  }

  dispose(): void {
    this.item.dispose();
  }
}
