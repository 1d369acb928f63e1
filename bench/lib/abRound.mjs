// One measured run of the A/B scripts (ab.mjs, million-ab.mjs): a wrk run against one of ours.
import { statSync, truncateSync } from 'node:fs';
import { sleep, userSysSeconds } from './proc.mjs';
import { wrk } from './client.mjs';

/**
 * wrk against `system` (one of ours, started with its log to a file): µs of the proxy's CPU per
 * request (all, and user time alone) and its log bytes per request; the log is emptied after.
 */
export async function measuredRun(system, wrkOptions) {
  const before = userSysSeconds(system.pid);
  const r = await wrk({ ...wrkOptions, proxyPort: system.port });
  const after = userSysSeconds(system.pid);
  // The log writer's last batch (it flushes within a few ms).
  await sleep(50);
  const logBytes = statSync(system.logFile).size;
  truncateSync(system.logFile, 0);
  return {
    reqPerSec: r.reqPerSec,
    errors: r.errors,
    us: ((after.user + after.sys - before.user - before.sys) * 1e6) / r.requests,
    userUs: ((after.user - before.user) * 1e6) / r.requests,
    logBytesPerRequest: logBytes / r.requests,
  };
}
