import * as path from 'node:path';
import * as vscode from 'vscode';
import { ConfigError, resolveConfig, type ProxyConfig } from '../core/config';

export const SECTION = 'cachingProxy';

/** Settings a workspace must not choose in an untrusted folder (they could expose, redirect or decrypt traffic). */
export const RESTRICTED_KEYS = ['host', 'upstreamProxy', 'allowedHosts', 'https.intercept'] as const;

export interface ExtensionSettings {
  config: ProxyConfig;
  autoStart: boolean;
  injectEnv: boolean;
  /** Where the Start Recording and Export dialogs open; empty: the workspace folder. */
  recordFolder: string;
  /** Problems of cachingProxy.rules / presets: those were not applied (the previous ones stay in force); everything else was. */
  ruleProblems: string[];
}

/** Maps the core's setting names in error messages to the names a user sees in settings.json. */
const SETTING_NAMES: Record<string, string> = { timeoutSeconds: 'timeout', 'har.redact': 'record.redact', 'har.recordMaxBodyMB': 'record.maxBodyMB' };

export class SettingsError extends Error {
  constructor(readonly problems: string[]) {
    super(problems.join('\n'));
    this.name = 'SettingsError';
  }
}

type Inspectable = Pick<vscode.WorkspaceConfiguration, 'get' | 'inspect'>;

/**
 * Reads `cachingProxy.*` into a validated ProxyConfig. In an untrusted workspace the workspace
 * values of the restricted keys are ignored (user values and defaults still apply).
 * Throws SettingsError naming each bad setting.
 */
export function readSettings(cfg: Inspectable, options: { trusted: boolean; defaultCacheDir: string; caDir?: string; previous?: ProxyConfig }): ExtensionSettings {
  const get = <T>(key: string): T | undefined => {
    if (!options.trusted && (RESTRICTED_KEYS as readonly string[]).includes(key)) {
      const i = cfg.inspect<T>(key);
      return i?.globalValue ?? i?.defaultValue;
    }
    return cfg.get<T>(key);
  };
  const dir = get<string>('cache.dir');
  const upstream = get<string>('upstreamProxy');
  const input = {
    port: get<number>('port'),
    host: get<string>('host'),
    allowedHosts: get<string[]>('allowedHosts'),
    upstreamProxy: upstream === undefined || upstream === '' ? null : upstream,
    noProxy: get<string[]>('noProxy'),
    timeoutSeconds: get<number>('timeout'),
    cache: {
      policy: get<string>('cache.policy'),
      dir: typeof dir === 'string' && dir.trim() !== '' ? resolveHome(dir.trim()) : options.defaultCacheDir,
      ttl: get<number>('cache.ttl'),
      admitAfter: get<number>('cache.admitAfter'),
      maxEntries: get<number>('cache.maxEntries'),
      maxSizeMB: get<number>('cache.maxSizeMB'),
      maxMemoryMB: get<number>('cache.maxMemoryMB'),
      maxObjectSizeMB: get<number>('cache.maxObjectSizeMB'),
      excludeContentTypes: get<string[]>('cache.excludeContentTypes'),
      serveStaleIfOffline: get<boolean>('cache.serveStaleIfOffline'),
      prefetchLinks: get<number>('cache.prefetchLinks'),
    },
    har: {
      redact: get<boolean>('record.redact'),
      recordMaxBodyMB: get<number>('record.maxBodyMB'),
    },
    rules: get<unknown>('rules'),
    presets: get<unknown>('presets'),
    https: {
      intercept: get<string[]>('https.intercept'),
      tunnel: get<string[]>('https.tunnel'),
      caDir: options.caDir,
    },
  };
  let config: ProxyConfig;
  let ruleProblems: string[] = [];
  try {
    config = resolveConfig(input);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    // Invalid rules must not hold back the other settings: those apply, the rules in force stay.
    if (!err.problems.every(isRuleProblem)) throw new SettingsError(err.problems.map(renameSetting));
    ruleProblems = err.problems.map(renameSetting);
    const bad = (key: string) => err.problems.some((p) => p.startsWith(key));
    config = resolveConfig({
      ...input,
      ...(bad('rules') ? { rules: options.previous?.rules ?? [] } : {}),
      ...(bad('presets') ? { presets: options.previous?.presets ?? [] } : {}),
    });
  }
  const autoStart = get<unknown>('autoStart');
  const injectEnv = get<unknown>('terminal.injectEnv');
  const recordFolder = get<unknown>('record.folder');
  return { config, autoStart: autoStart === true, injectEnv: injectEnv !== false, recordFolder: typeof recordFolder === 'string' ? resolveHome(recordFolder.trim()) : '', ruleProblems };
}

function isRuleProblem(problem: string): boolean {
  return /^(rules|presets)[[:]/.test(problem);
}

function renameSetting(problem: string): string {
  const m = /^([\w.]+)(?=[:[ ])/.exec(problem);
  if (!m) return problem;
  const [section, ...rest] = m[1].split('.');
  const name = SETTING_NAMES[m[1]] ?? [SETTING_NAMES[section] ?? section, ...rest].join('.');
  return `${SECTION}.${name}${problem.slice(m[0].length)}`.replace(/ Pass --allow-remote.*$/, ' The extension listens on loopback addresses only (127.0.0.1, ::1, localhost).');
}

function resolveHome(dir: string): string {
  if (dir === '~' || dir.startsWith('~/')) return path.join(process.env.HOME ?? '', dir.slice(1));
  return dir;
}
