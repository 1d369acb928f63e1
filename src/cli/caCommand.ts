import { parseArgs } from 'node:util';
import { defaultCaDir } from '../core/config';
import { ProxyError } from '../core/exchange';
import { loadOrCreateCa } from '../core/tls/ca';

const USAGE = 'usage: caching-proxy ca [--ca-dir DIR]';

/**
 * `caching-proxy ca`: the local CA's certificate path on the first line (for scripts:
 * `curl --cacert "$(caching-proxy ca | head -1)"`), then its SHA-256 fingerprint and validity.
 * Makes the CA when there is none yet. Exit 2 for bad flags, 1 for a CA that cannot be read or made.
 */
export async function caCommand(argv: string[]): Promise<void> {
  let dir: string;
  try {
    const { values } = parseArgs({ args: argv, options: { 'ca-dir': { type: 'string' }, help: { type: 'boolean', short: 'h' } }, strict: true });
    if (values.help) {
      process.stdout.write(`${USAGE}\n`);
      return;
    }
    dir = values['ca-dir'] ?? defaultCaDir();
    if (dir.trim() === '') throw new Error('--ca-dir needs a folder');
  } catch (err) {
    process.stderr.write(`caching-proxy ca: ${(err as Error).message}\n${USAGE}\n`);
    process.exit(2);
  }
  try {
    const ca = await loadOrCreateCa(dir);
    process.stdout.write(
      `${ca.certPath}\n` +
        `SHA-256 fingerprint: ${ca.fingerprint256}\n` +
        `Valid from ${ca.validFrom.toISOString()} to ${ca.validTo.toISOString()}\n` +
        `Bundle (system roots + this CA): ${ca.bundlePath}\n` +
        (ca.created ? 'Made just now. ' : '') +
        'Clients that should accept intercepted HTTPS must trust this certificate; keep ca-key.pem private.\n',
    );
  } catch (err) {
    const message = err instanceof ProxyError ? err.message : (err as Error).message;
    process.stderr.write(`caching-proxy ca: ${message}\n`);
    process.exit(1);
  }
}
