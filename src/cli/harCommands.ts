/**
 * `caching-proxy export-har` and `caching-proxy import-har`: HAR files out of and into a disk
 * cache, with no proxy running. They open the cache through its public operations only.
 */
import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { createCache } from '../cache';
import { ConfigError, defaultCacheDir, resolveConfig, type CachePolicyName } from '../core/config';
import { EventBus } from '../core/events';
import { ProxyError, type Origin } from '../core/exchange';
import { describeImport, exportHarFile } from '../har/files';
import { HarFormatError, importHar, parseHar } from '../har/import';

export const HAR_COMMANDS = ['export-har', 'import-har'] as const;
export type HarCommand = (typeof HAR_COMMANDS)[number];

export const HAR_HELP = `caching-proxy export-har [--cache-dir DIR] [--match PATTERN] [-o FILE] [--no-redact]
  Writes the stored responses (all, or those whose URL matches PATTERN: "*" matches anything
  and then the whole URL must match, otherwise the URL must contain PATTERN) as a HAR 1.2 file,
  to FILE or, with no -o or "-o -", to standard output. Credential headers are redacted.

caching-proxy import-har FILE [--cache-dir DIR] [--policy standard|private|always]
  Stores each complete GET response of FILE in the cache (keyed with its request's Vary
  fields), by the caching rules of the policy (default standard); lists what is not stored and
  why. A malformed file changes nothing. Stop a proxy using the same cache directory first.

The cache directory defaults to ${defaultCacheDir()}.`;

/** A cache that will never reach an origin: these commands only read and write entries. */
const NO_ORIGIN: Origin = {
  fetch: () => Promise.reject(new ProxyError(502, 'no origin is contacted by this command', 'NO_ORIGIN')),
};

async function openCache(dir: string, policy: CachePolicyName = 'standard') {
  const config = resolveConfig({ cache: { dir, policy } });
  const events = new EventBus();
  const warnings: string[] = [];
  events.on((e) => {
    if (e.type === 'notice' && (e.level === 'warn' || e.level === 'error')) warnings.push(e.message);
  });
  const cache = await createCache(config.cache, { events, origin: NO_ORIGIN });
  if (warnings.length) {
    await cache.close();
    throw new Error(warnings.join('; '));
  }
  return cache;
}

/** Runs a subcommand; resolves with the exit code (0 done, 1 failed, 2 bad usage or a malformed file). */
export async function runHarCommand(command: HarCommand, argv: string[], out: NodeJS.WriteStream = process.stdout, err: NodeJS.WriteStream = process.stderr): Promise<number> {
  const say = (line: string) => err.write(`caching-proxy ${command}: ${line}\n`);
  let values: Record<string, string | boolean | undefined>;
  let positionals: string[];
  try {
    ({ values, positionals } = parseArgs({
      args: argv,
      allowPositionals: true,
      options:
        command === 'export-har'
          ? { 'cache-dir': { type: 'string' }, match: { type: 'string' }, output: { type: 'string', short: 'o' }, 'no-redact': { type: 'boolean' }, help: { type: 'boolean', short: 'h' } }
          : { 'cache-dir': { type: 'string' }, policy: { type: 'string' }, help: { type: 'boolean', short: 'h' } },
    }) as { values: Record<string, string | boolean | undefined>; positionals: string[] });
  } catch (e) {
    say(`${(e as Error).message} (see --help)`);
    return 2;
  }
  if (values.help) {
    out.write(HAR_HELP + '\n');
    return 0;
  }
  const dir = typeof values['cache-dir'] === 'string' ? values['cache-dir'] : defaultCacheDir();
  try {
    if (command === 'export-har') {
      if (positionals.length) {
        say(`unexpected argument "${positionals[0]}" (see --help)`);
        return 2;
      }
      const target = typeof values.output === 'string' && values.output !== '-' ? values.output : out;
      // A reader that stops early (`| head`) is not an error.
      out.on('error', (e: NodeJS.ErrnoException) => {
        if (e.code === 'EPIPE') process.exit(0);
      });
      const cache = await openCache(dir);
      try {
        const result = await exportHarFile(cache, { match: values.match as string | undefined, redact: values['no-redact'] !== true }, target);
        if (target !== out) say(`${result.entries} ${result.entries === 1 ? 'entry' : 'entries'} written to ${result.file}`);
      } finally {
        await cache.close();
      }
      return 0;
    }
    if (positionals.length !== 1) {
      say(positionals.length ? `one HAR file at a time (got ${positionals.length})` : 'which HAR file? caching-proxy import-har FILE --cache-dir DIR');
      return 2;
    }
    const policy = (values.policy as string | undefined) ?? 'standard';
    if (!['standard', 'private', 'always'].includes(policy)) {
      say(`--policy: "${policy}" is not one of standard, private, always`);
      return 2;
    }
    const file = positionals[0];
    const text = await readFile(file, 'utf8').catch((e: Error) => {
      throw new HarFormatError(`cannot read ${file}: ${e.message}`);
    });
    // Checked before the cache is even opened: a malformed file does not touch it.
    parseHar(text, file);
    const cache = await openCache(dir, policy as CachePolicyName);
    try {
      const report = await importHar(cache, text, file);
      for (const line of describeImport(report)) out.write(line + '\n');
    } finally {
      await cache.close();
    }
    return 0;
  } catch (e) {
    if (e instanceof HarFormatError) {
      say(e.message);
      say('nothing was imported');
      return 2;
    }
    if (e instanceof ConfigError) {
      for (const p of e.problems) say(p);
      return 2;
    }
    say((e as Error).message);
    return 1;
  }
}
