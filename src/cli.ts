import { readFileSync } from 'node:fs';
import { ConfigError, isLoopbackHost, resolveConfig, type ProxyConfig } from './core/config';
import { EventBus, eventLevel, formatEvent, type LogLevel } from './core/events';
import { ProxyError } from './core/exchange';
import { HAR_COMMANDS, runHarCommand, type HarCommand } from './cli/harCommands';
import { runIpcChild } from './ipc/child';
import { IPC_ENV } from './ipc/protocol';
import { stdioWriters } from './cli/logWriter';
import { caCommand } from './cli/caCommand';
import { tuneHeapForProxy } from './cli/heap';
import { RunningProxy } from './proxy';

const HELP = `caching-proxy: a local caching HTTP proxy for developers (RFC 9111)

Usage: caching-proxy [options]
       caching-proxy export-har | import-har ...   (HAR files out of / into the cache; --help for each)
       caching-proxy ca [--ca-dir DIR]   print the local CA's path, fingerprint and validity (made if absent)

  --port N                 port to listen on (default 8899; 0 picks a free one)
  --host H                 address to listen on (default 127.0.0.1)
  --allow-remote           permit a non-loopback --host (others on your network can use the proxy)
  --allowed-hosts LIST     comma-separated names (besides 127.0.0.1, localhost, [::1], --host) under
                           which path-style requests are served; .example.com covers subdomains
  --auth USER:PASS         require these Basic credentials in Proxy-Authorization (407 otherwise)
  --upstream URL           send origin traffic through another proxy, e.g. http://proxy:3128
  --no-proxy LIST          comma-separated hosts reached directly despite --upstream
  --timeout S              seconds to wait for an origin before 504 (default 30)
  --cache-dir DIR          where the disk cache lives (default ~/.cache/caching-proxy)
  --memory-only            keep the cache in memory only
  --policy P               standard | private | always | offline | off | replay (default standard)
  --ttl S                  freshness for responses without explicit freshness (default: none, only the
                           RFC 9111 heuristic); the lifetime of everything under --policy always (default 300)
  --admit-after N          store a URL only from its Nth request (default 1)
  --max-entries N          most entries kept (default 0: no count, the size bounds the cache)
  --max-size-mb N          cache size (default 10240, at most half the free disk space)
  --max-memory-mb N        memory tier size (default 64)
  --max-object-size-mb N   larger responses pass through unstored (default 256)
  --exclude-content-types L  comma-separated types never stored, e.g. "video/*,application/zip"
  --no-serve-stale-if-offline  answer 502 instead of a stale copy when the origin is down
  --prefetch-links N       after storing an HTML page, prefetch up to N same-origin links (default 0)
  --record FILE            append every exchange (any method, cached or not) to this HAR file
  --record-max-body-mb N   bodies kept per recorded exchange, each way (default 10)
  --no-redact              keep Authorization, Cookie, Set-Cookie, *token*, *api-key*, *secret* values in recordings
  --replay FILE            with --policy replay: answer from this HAR file (method + URL + request body)
  --replay-miss M          error (504, default) | forward: what a request the HAR file does not hold gets
  --presets LIST           package-manager rules: comma-separated npm, pypi, debian, go, maven
                           (per-URL "rules" go in the --config file; see the README)
  --intercept LIST         HTTPS hosts to decrypt and cache with the local CA (comma-separated:
                           example.com covers its subdomains, *.example.com, host:port, * for all;
                           default none: HTTPS is tunnelled untouched)
  --tunnel LIST            HTTPS hosts never intercepted (e.g. certificate-pinned clients); wins over --intercept
  --ca-dir DIR             where the local CA lives (default ~/.config/caching-proxy)
  --upstream-ca FILE       PEM file of extra CAs trusted for origins (besides Node's and NODE_EXTRA_CA_CERTS)
  --config FILE            JSON file with any of the above (camelCase keys; cache keys under "cache",
                           recording under "har", HTTPS under "https")
  --log-level L            trace | debug | info | warn | error (default info)
  --quiet                  same as --log-level warn
  --help                   this text
  --version                the version

Point a client at it:  curl -x http://127.0.0.1:8899 http://example.com/
or address a site path-style in a browser:  http://127.0.0.1:8899/example.com/

Exit codes: 0 stopped cleanly, 1 could not start (e.g. port in use), 2 invalid flags or settings.`;

class UsageError extends Error {}

type FlagSpec = { key: string; cache?: boolean; har?: boolean; https?: boolean; kind: 'value' | 'true' | 'false' };
const FLAGS: Record<string, FlagSpec> = {
  '--port': { key: 'port', kind: 'value' },
  '--host': { key: 'host', kind: 'value' },
  '--allow-remote': { key: 'allowRemote', kind: 'true' },
  '--allowed-hosts': { key: 'allowedHosts', kind: 'value' },
  '--auth': { key: 'auth', kind: 'value' },
  '--upstream': { key: 'upstreamProxy', kind: 'value' },
  '--no-proxy': { key: 'noProxy', kind: 'value' },
  '--timeout': { key: 'timeoutSeconds', kind: 'value' },
  '--cache-dir': { key: 'dir', cache: true, kind: 'value' },
  '--policy': { key: 'policy', cache: true, kind: 'value' },
  '--ttl': { key: 'ttl', cache: true, kind: 'value' },
  '--admit-after': { key: 'admitAfter', cache: true, kind: 'value' },
  '--max-entries': { key: 'maxEntries', cache: true, kind: 'value' },
  '--max-size-mb': { key: 'maxSizeMB', cache: true, kind: 'value' },
  '--max-memory-mb': { key: 'maxMemoryMB', cache: true, kind: 'value' },
  '--max-object-size-mb': { key: 'maxObjectSizeMB', cache: true, kind: 'value' },
  '--exclude-content-types': { key: 'excludeContentTypes', cache: true, kind: 'value' },
  '--serve-stale-if-offline': { key: 'serveStaleIfOffline', cache: true, kind: 'true' },
  '--no-serve-stale-if-offline': { key: 'serveStaleIfOffline', cache: true, kind: 'false' },
  '--prefetch-links': { key: 'prefetchLinks', cache: true, kind: 'value' },
  '--record': { key: 'record', har: true, kind: 'value' },
  '--record-max-body-mb': { key: 'recordMaxBodyMB', har: true, kind: 'value' },
  '--no-redact': { key: 'redact', har: true, kind: 'false' },
  '--replay': { key: 'replay', har: true, kind: 'value' },
  '--replay-miss': { key: 'replayMiss', har: true, kind: 'value' },
  '--presets': { key: 'presets', kind: 'value' },
  '--intercept': { key: 'intercept', https: true, kind: 'value' },
  '--tunnel': { key: 'tunnel', https: true, kind: 'value' },
  '--ca-dir': { key: 'caDir', https: true, kind: 'value' },
  '--upstream-ca': { key: 'upstreamCa', https: true, kind: 'value' },
};

export interface CliOptions {
  config: ProxyConfig;
  logLevel: LogLevel;
}

/** Parses argv into a validated config; throws UsageError or ConfigError with a precise message. */
export function parseArgs(argv: string[]): CliOptions | 'help' | 'version' {
  const top: Record<string, unknown> = {};
  const cache: Record<string, unknown> = {};
  const har: Record<string, unknown> = {};
  const https: Record<string, unknown> = {};
  let configFile: string | null = null;
  let logLevel: LogLevel = 'info';
  for (let i = 0; i < argv.length; i++) {
    let arg = argv[i];
    let inline: string | undefined;
    const eq = arg.indexOf('=');
    if (arg.startsWith('--') && eq > 0) {
      inline = arg.slice(eq + 1);
      arg = arg.slice(0, eq);
    }
    const takeValue = (): string => {
      if (inline !== undefined) return inline;
      const v = argv[++i];
      if (v === undefined || (v.startsWith('--') && v.length > 2)) throw new UsageError(`${arg} needs a value`);
      return v;
    };
    if (arg === '--help' || arg === '-h') return 'help';
    if (arg === '--version' || arg === '-v') return 'version';
    if (arg === '--config') { configFile = takeValue(); continue; }
    if (arg === '--quiet' || arg === '-q') { logLevel = 'warn'; continue; }
    if (arg === '--memory-only') { cache.dir = null; continue; }
    if (arg === '--log-level') {
      const v = takeValue();
      if (!['trace', 'debug', 'info', 'warn', 'error'].includes(v)) throw new UsageError(`--log-level: "${v}" is not one of trace, debug, info, warn, error`);
      logLevel = v as LogLevel;
      continue;
    }
    const spec = FLAGS[arg];
    if (!spec) throw new UsageError(`unknown option "${argv[i]}" (see --help)`);
    const value = spec.kind === 'value' ? takeValue() : spec.kind === 'true';
    if (spec.kind !== 'value' && inline !== undefined) throw new UsageError(`${arg} takes no value`);
    (spec.cache ? cache : spec.har ? har : spec.https ? https : top)[spec.key] = value;
  }
  let fileConfig: Record<string, unknown> = {};
  if (configFile) {
    let text: string;
    try {
      text = readFileSync(configFile, 'utf8');
    } catch (err) {
      throw new UsageError(`--config: cannot read ${configFile}: ${(err as Error).message}`);
    }
    try {
      const parsed: unknown = JSON.parse(text);
      if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new Error('the top level must be an object');
      fileConfig = parsed as Record<string, unknown>;
    } catch (err) {
      throw new UsageError(`--config: ${configFile} is not valid JSON: ${(err as Error).message}`);
    }
  }
  const fileCache = (typeof fileConfig.cache === 'object' && fileConfig.cache !== null ? fileConfig.cache : {}) as Record<string, unknown>;
  const fileHar = (typeof fileConfig.har === 'object' && fileConfig.har !== null ? fileConfig.har : {}) as Record<string, unknown>;
  const fileHttps = (typeof fileConfig.https === 'object' && fileConfig.https !== null ? fileConfig.https : {}) as Record<string, unknown>;
  const merged = { ...fileConfig, ...top, cache: { ...fileCache, ...cache }, har: { ...fileHar, ...har }, https: { ...fileHttps, ...https } };
  return { config: resolveConfig(merged), logLevel };
}

const LEVELS: LogLevel[] = ['trace', 'debug', 'info', 'warn', 'error'];

/** How long an exit waits for a stalled reader of the log before leaving without the rest. */
const LOG_EXIT_WAIT_MS = 5_000;

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  const subcommand = argv[0];
  if ((HAR_COMMANDS as readonly string[]).includes(subcommand)) {
    process.exitCode = await runHarCommand(subcommand as HarCommand, argv.slice(1));
    return;
  }
  if (subcommand === 'ca') return caCommand(argv.slice(1));
  let options: CliOptions | 'help' | 'version';
  try {
    options = parseArgs(argv);
  } catch (err) {
    if (err instanceof UsageError || err instanceof ConfigError) {
      const lines = err instanceof ConfigError ? err.problems : [err.message];
      for (const line of lines) process.stderr.write(`caching-proxy: ${line}\n`);
      process.exit(2);
    }
    throw err;
  }
  if (options === 'help') {
    process.stdout.write(HELP + '\n');
    return;
  }
  if (options === 'version') {
    process.stdout.write(`${typeof __VERSION__ === 'string' ? __VERSION__ : 'dev'}\n`);
    return;
  }
  const { config, logLevel } = options;
  const threshold = LEVELS.indexOf(logLevel);
  // From here on every line goes through the buffered writers (process.stdout/stderr are not touched again).
  const log = stdioWriters(logBufferBytes());
  const exit = async (code: number, waitMs = LOG_EXIT_WAIT_MS): Promise<never> => {
    await Promise.all([log.out.close(waitMs), log.err.close(waitMs)]);
    process.exit(code);
  };
  process.on('exit', () => {
    log.out.flushSync();
    log.err.flushSync();
  });
  let fatal = false;
  process.on('uncaughtException', (err: Error) => {
    if (fatal) return;
    fatal = true;
    log.err.write(`caching-proxy: unexpected error: ${err.stack ?? err.message}\n`);
    void exit(1);
  });
  let proxy: RunningProxy;
  const events = new EventBus();
  events.on((e) => {
    const level = eventLevel(e);
    // The address is printed once below, in a friendlier form.
    if (LEVELS.indexOf(level) < threshold || e.type === 'listening') return;
    (level === 'error' || level === 'warn' ? log.err : log.out).log(level, formatEvent(e));
  }, logLevel);
  tuneHeapForProxy();
  try {
    proxy = await RunningProxy.start(config, events);
  } catch (err) {
    const message = err instanceof ProxyError ? err.message : (err as Error).message;
    log.err.write(`caching-proxy: cannot start: ${message}\n`);
    if (err instanceof ProxyError && err.code === 'EADDRINUSE') log.err.write('caching-proxy: pick another with --port N (or --port 0 for any free port)\n');
    return exit(1);
  }
  if (!isLoopbackHost(config.host)) {
    log.err.write(`caching-proxy: WARNING: listening on ${config.host}: other machines can reach this proxy${config.auth ? '' : ' and no --auth is set'}\n`);
  }
  // Whatever was said before it (the warning above) is out first: whoever waits for the address has read it.
  log.err.flush();
  log.out.write(`Caching proxy listening on ${proxy.address.url}  (curl -x ${proxy.address.url} http://example.com/)\n`);
  // Whoever waits for this line (a script, a service manager's readiness check) sees it at once.
  log.out.flush();
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) {
      log.err.write(`caching-proxy: ${signal} again, exiting now\n`);
      void exit(130, 250);
      return;
    }
    stopping = true;
    log.out.write(`caching-proxy: ${signal} received, finishing in-flight requests…\n`);
    proxy.close(10_000).then(
      () => exit(0),
      (err: Error) => {
        log.err.write(`caching-proxy: error while stopping: ${err.message}\n`);
        return exit(1);
      },
    );
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
}

/** CACHING_PROXY_LOG_BUFFER_BYTES: how much log output may wait for a slow reader (default 4 MiB). */
function logBufferBytes(): number | undefined {
  const raw = process.env.CACHING_PROXY_LOG_BUFFER_BYTES;
  const n = raw === undefined ? NaN : Number(raw);
  return Number.isInteger(n) && n > 0 ? n : undefined;
}

declare const __VERSION__: string | undefined;

if (require.main === module && process.env[IPC_ENV] === '1' && process.send) {
  // Forked by the VS Code extension: config and queries arrive over the IPC channel.
  tuneHeapForProxy();
  runIpcChild();
} else if (require.main === module) {
  main().catch((err: Error) => {
    process.stderr.write(`caching-proxy: unexpected error: ${err.stack ?? err.message}\n`);
    process.exit(1);
  });
}
