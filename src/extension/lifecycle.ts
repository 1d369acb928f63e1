import { mkdir } from 'node:fs/promises';
import * as net from 'node:net';
import * as path from 'node:path';
import * as vscode from 'vscode';
import { eventLevel, formatEvent, type ProxyEvent } from '../core/events';
import { CA_BUNDLE_FILE, CA_FILE, CLIENT_CLOSED_UNUSED, CLIENT_REJECTED_CA } from '../core/tls/names';
import { Disposable, toDisposable } from './dispose';
import type { UserOutput } from './output';
import { ProxyController, type ProxyStartError, type ProxyRequestError } from './proxyController';
import { readSettings, SECTION, SettingsError, type ExtensionSettings } from './settings';
import { ProxyStatusBar } from './statusBar';
import { TerminalProxyEnv } from './terminalEnv';

/**
 * The proxy process as the user runs it from the editor: settings read and applied live,
 * start and stop, what its events mean for the log, the status bar and new terminals.
 */
export class ProxyLifecycle extends Disposable {
  readonly controller: ProxyController;
  readonly statusBar = this._register(new ProxyStatusBar());
  private readonly terminal: TerminalProxyEnv;
  private current: ExtensionSettings | null = null;
  private hits = 0;
  private hitsTimer: NodeJS.Timeout | null = null;
  /** Settings changes are applied one after another. */
  private applying: Promise<void> = Promise.resolve();
  private readonly stateChanged = this._register(new vscode.EventEmitter<void>());
  /** After every change of what onState shows (state, address, hits). */
  readonly onDidChangeState = this.stateChanged.event;

  constructor(
    private readonly context: vscode.ExtensionContext,
    private readonly output: UserOutput,
  ) {
    super();
    this.controller = new ProxyController({ entry: context.asAbsolutePath(path.join('dist', 'cli.js')) });
    this._register(toDisposable(() => this.controller.dispose()));
    this._register(toDisposable(() => this.hitsTimer && clearTimeout(this.hitsTimer)));
    this.terminal = new TerminalProxyEnv(context.environmentVariableCollection);
    this.terminal.clear();
    this._register(
      vscode.workspace.onDidChangeConfiguration((e) => {
        if (e.affectsConfiguration(SECTION)) this.applySettings();
      }),
    );
    this._register(vscode.workspace.onDidGrantWorkspaceTrust(() => this.applySettings()));
    this.controller.on('events', (events, dropped) => this.onEvents(events, dropped));
    this.controller.on('state', () => this.onState());
    this.controller.on('output', (text) => {
      for (const line of text.split('\n')) if (line.trim()) this.output.log('warn', `[proxy process] ${line}`);
    });
    this.controller.on('exit', (exit) => {
      this.terminal.clear();
      if (exit.expected) return;
      const how = exit.signal ? `signal ${exit.signal}` : `exit code ${exit.code}`;
      this.output.log('error', `the proxy process stopped unexpectedly (${how})${exit.stderr ? `:\n${exit.stderr.trim()}` : ''}`);
      void this.output.notify('error', `Caching Proxy stopped unexpectedly (${how}). See the log for details.`, 'Start Proxy', 'Show Log').then((choice) => {
        if (choice === 'Start Proxy') void this.start();
        if (choice === 'Show Log') this.output.showLog();
      });
    });
    this.onState();
  }

  async activate(): Promise<void> {
    this.current = this.tryReadSettings();
    if (this.current?.autoStart) await this.start();
  }

  /** The settings in force (the last valid ones). */
  get settings(): ExtensionSettings | null {
    return this.current;
  }

  /** Resolves once every settings change seen so far has been applied. */
  async settled(): Promise<void> {
    // Configuration events arrive asynchronously after update(): let them queue first.
    await new Promise((r) => setTimeout(r, 50));
    await this.applying;
  }

  /** True when running; otherwise offers to start and returns false. */
  requireRunning(): boolean {
    if (this.controller.state === 'running') return true;
    void this.output.notify('warning', 'Caching Proxy is not running. Start it first.', 'Start Proxy').then((c) => {
      if (c) void this.start();
    });
    return false;
  }

  // ---- settings -------------------------------------------------------------------------

  private defaultCacheDir(): string {
    return path.join(this.context.globalStorageUri.fsPath, 'cache');
  }

  /** The local CA for HTTPS interception lives in the extension's global storage. */
  get caDir(): string {
    return path.join(this.context.globalStorageUri.fsPath, 'ca');
  }

  /** Reads the settings; on a bad value tells the user and returns null (callers keep the last good ones). */
  private tryReadSettings(): ExtensionSettings | null {
    try {
      const settings = readSettings(vscode.workspace.getConfiguration(SECTION), { trusted: vscode.workspace.isTrusted, defaultCacheDir: this.defaultCacheDir(), caDir: this.caDir, previous: this.current?.config });
      if (settings.ruleProblems.length) this.reportInvalid(settings.ruleProblems, ' The previous rules and presets stay in force; the other settings apply.');
      return settings;
    } catch (err) {
      if (!(err instanceof SettingsError)) throw err;
      this.reportInvalid(err.problems, this.controller.state === 'running' ? ' The proxy keeps running with the previous settings.' : '');
      return null;
    }
  }

  private reportInvalid(problems: string[], kept: string): void {
    const message = `Caching Proxy: invalid setting. ${problems.join(' ')}${kept}`;
    this.output.log('error', message);
    void this.output.notify('error', message, 'Open Settings').then((choice) => {
      if (choice) void vscode.commands.executeCommand('workbench.action.openSettings', `@ext:${this.context.extension.id}`);
    });
  }

  private applySettings(): void {
    this.applying = this.applying.then(() => this.applySettingsNow()).catch((err: Error) => this.output.log('error', `applying settings: ${err.message}`));
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
        this.output.log('info', `settings applied; listening on ${address.url}`);
      } catch (err) {
        const e = err as ProxyRequestError;
        if (e.code === 'EADDRINUSE') {
          this.current = { ...next, config: this.controller.config ?? next.config };
          void this.portInUse(next.config.port, next.config.host, ` It keeps listening on ${this.controller.address?.url}.`);
        } else {
          void this.output.notify('error', `Caching Proxy: cannot apply the new settings: ${e.message}`);
        }
        this.output.log('error', `settings not applied: ${e.message}`);
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
      void this.output.notify('info', `Caching Proxy is already running on ${this.controller.address?.url}.`);
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
      this.output.log('info', `started; cache in ${settings.config.cache.dir ?? 'memory only'}`);
      this.updateTerminalEnv();
      this.onState();
    } catch (err) {
      const e = err as ProxyStartError;
      this.output.log('error', `cannot start: ${e.message}`);
      if (e.code === 'EADDRINUSE') void this.portInUse(settings.config.port, settings.config.host, '');
      else void this.output.notify('error', `Caching Proxy could not start: ${e.message}`, 'Show Log').then((c) => c && this.output.showLog());
    }
  }

  async stop(): Promise<void> {
    if (this.controller.state === 'stopped') return;
    this.terminal.clear();
    await this.controller.stop();
    this.output.log('info', 'stopped');
    this.onState();
  }

  /** Stops cleanly while the editor waits (deactivate); dispose() is the hard fallback. */
  async shutdown(): Promise<void> {
    await this.controller.stop(1_000).catch(() => this.controller.dispose());
  }

  private async portInUse(port: number, host: string, extra: string): Promise<void> {
    const choice = await this.output.notify('error', `Caching Proxy: port ${port} on ${host} is already in use by another program.${extra}`, 'Use a Free Port', 'Open Setting');
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
      const https = this.current?.config.https;
      const ca = https && https.intercept.length > 0 ? { cert: path.join(https.caDir, CA_FILE), bundle: path.join(https.caDir, CA_BUNDLE_FILE) } : null;
      this.terminal.apply(address.url, this.current?.config.noProxy ?? [], ca);
    } else {
      this.terminal.clear();
    }
  }

  // ---- events -----------------------------------------------------------------------------

  private onEvents(events: ProxyEvent[], dropped: number): void {
    if (events.some((e) => e.type === 'response' || e.type === 'cache')) this.scheduleHitsUpdate();
    for (const e of events) {
      if (e.type === 'listening' || e.type === 'closed') continue; // the extension logs start/stop itself
      this.output.log(eventLevel(e), formatEvent(e));
      // Notices are rare, once-only conditions (cache dir not writable, disk full): worth a toast.
      if (e.type === 'error' && (e.code === CLIENT_REJECTED_CA || e.code === CLIENT_CLOSED_UNUSED)) this.hintUntrustedCa(e.url ?? '');
      if (e.type === 'notice' && (e.level === 'warn' || e.level === 'error')) {
        void this.output.notify(e.level === 'error' ? 'error' : 'warning', `Caching Proxy: ${e.message}`, 'Show Log').then((c) => {
          if (c) this.output.showLog();
        });
      }
    }
    if (dropped > 0) this.output.log('warn', `${dropped} events not shown: too many at once`);
  }

  private hintedUntrustedCa = false;

  /** A client refused our certificate: say once per session how to trust the CA. */
  private hintUntrustedCa(target: string): void {
    if (this.hintedUntrustedCa) return;
    this.hintedUntrustedCa = true;
    const host = target.replace(/:\d+$/, '');
    void this.output
      .notify('warning', `Caching Proxy: a client rejected the HTTPS certificate for ${host} (or closed without a request): it may not trust the proxy's local CA yet.`, 'Trust HTTPS Certificate…', 'Show Log')
      .then((choice) => {
        if (choice === 'Trust HTTPS Certificate…') void vscode.commands.executeCommand('cachingProxy.trustCertificate');
        if (choice === 'Show Log') this.output.showLog();
      });
  }

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

  /** Brings the status bar, context keys and terminals in line with the controller's state. */
  onState(): void {
    if (this.isDisposed) return;
    const state = this.controller.state;
    const address = this.controller.address;
    this.statusBar.show(state, address ? `${address.host.includes(':') ? `[${address.host}]` : address.host}:${address.port}` : null, this.hits);
    void vscode.commands.executeCommand('setContext', 'cachingProxy.state', state);
    void vscode.commands.executeCommand('setContext', 'cachingProxy.running', state === 'running');
    if (state !== 'running') this.terminal.clear();
    this.stateChanged.fire();
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
