// Starts a throwaway code-server (a real VS Code 1.100 with a Node extension host) and a headless
// Debian Chromium to drive it. Everything lives under one temp folder; stop() removes the
// whole process group so no file watcher, extension host or proxy child survives.
import { spawn, execFile } from 'node:child_process';
import { mkdtemp, mkdir, writeFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';

const here = dirname(fileURLToPath(import.meta.url));
const require = createRequire(import.meta.url);
export const CODE_SERVER = join(here, 'node_modules', '.bin', 'code-server');
export const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';

/** @param {string} prefix */
async function makeDirs(prefix) {
  const root = await mkdtemp(join(tmpdir(), `caching-proxy-e2e-${prefix}-`));
  const dirs = {
    root,
    userData: join(root, 'user-data'),
    extensions: join(root, 'extensions'),
    workspace: join(root, 'workspace'),
    xdgConfig: join(root, 'xdg-config'),
    xdgData: join(root, 'xdg-data'),
    xdgCache: join(root, 'xdg-cache'),
    tmp: join(root, 'tmp'),
    home: join(root, 'home'),
  };
  for (const d of Object.values(dirs)) await mkdir(d, { recursive: true });
  await mkdir(join(dirs.userData, 'User'), { recursive: true });
  return dirs;
}

function isolatedEnv(dirs, extra = {}) {
  const env = { ...process.env, ...extra };
  // code-server writes under the home directory unless told otherwise; the proxy's env must not leak in.
  Object.assign(env, { XDG_CONFIG_HOME: dirs.xdgConfig, XDG_DATA_HOME: dirs.xdgData, XDG_CACHE_HOME: dirs.xdgCache, TMPDIR: dirs.tmp, HOME: dirs.home });
  for (const name of ['HTTP_PROXY', 'HTTPS_PROXY', 'http_proxy', 'https_proxy', 'NO_PROXY', 'no_proxy', 'VSCODE_IPC_HOOK_CLI', 'ELECTRON_RUN_AS_NODE']) delete env[name];
  return env;
}

function run(file, args, env) {
  return new Promise((resolve, reject) => {
    execFile(file, args, { env, timeout: 120_000 }, (err, stdout, stderr) => (err ? reject(new Error(`${file} ${args.join(' ')}: ${err.message}\n${stderr}`)) : resolve(stdout)));
  });
}

/**
 * @param {{ name: string, settings?: Record<string, unknown>, vsix?: string, env?: Record<string,string>, log?: (line: string) => void }} options
 */
export async function startCodeServer(options) {
  const dirs = await makeDirs(options.name);
  const settings = {
    'workbench.startupEditor': 'none',
    'extensions.autoUpdate': false,
    'extensions.autoCheckUpdates': false,
    'update.mode': 'none',
    'telemetry.telemetryLevel': 'off',
    'workbench.enableExperiments': false,
    'security.workspace.trust.enabled': false,
    'workbench.tips.enabled': false,
    'chat.commandCenter.enabled': false,
    ...options.settings,
  };
  await writeFile(join(dirs.userData, 'User', 'settings.json'), JSON.stringify(settings, null, 2));
  const env = isolatedEnv(dirs, options.env);
  const common = ['--user-data-dir', dirs.userData, '--extensions-dir', dirs.extensions];
  if (options.vsix) await run(CODE_SERVER, [...common, '--install-extension', options.vsix], env);

  const args = ['--auth', 'none', '--bind-addr', '127.0.0.1:0', ...common, '--disable-telemetry', '--disable-update-check', '--disable-getting-started-override', '--ignore-last-opened'];
  // detached: a new session and process group (as setsid), so stop() can signal all of it.
  const child = spawn(CODE_SERVER, args, { env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  const url = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`code-server did not start:\n${output}`)), 60_000);
    const onData = (chunk) => {
      const text = chunk.toString();
      output += text;
      for (const line of text.split('\n')) if (line.trim()) options.log?.(line);
      const m = /HTTP server listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(output);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`code-server exited (${code}):\n${output}`));
    });
  });
  for (let i = 0; i < 100; i++) {
    const ok = await fetch(`${url}/healthz`).then((r) => r.ok, () => false);
    if (ok) break;
    await new Promise((r) => setTimeout(r, 100));
  }

  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    const gone = new Promise((r) => (child.exitCode !== null || child.signalCode !== null ? r() : child.once('exit', r)));
    try {
      process.kill(-child.pid, 'SIGTERM');
    } catch {
      // already gone
    }
    const timer = setTimeout(() => {
      try {
        process.kill(-child.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }, 5_000);
    await gone;
    clearTimeout(timer);
    // Children that outlived the leader still belong to the group.
    try {
      process.kill(-child.pid, 'SIGKILL');
    } catch {
      // none left
    }
    if (!process.env.KEEP_E2E_DIRS) await rm(dirs.root, { recursive: true, force: true }).catch(() => {});
  };
  return { url, dirs, child, stop, output: () => output };
}

/** A headless Debian Chromium through playwright-core (never a downloaded browser). */
export async function launchBrowser() {
  const { chromium } = require('playwright-core');
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage'],
  });
  const context = await browser.newContext({ viewport: { width: 1400, height: 900 } });
  await context.grantPermissions(['clipboard-read', 'clipboard-write']);
  const close = async () => {
    // Leave the workbench first: a closed tab leaves the extension host waiting to reconnect for hours.
    for (const page of context.pages()) await page.goto('about:blank').catch(() => {});
    await browser.close().catch(() => {});
  };
  return { browser, context, close };
}
