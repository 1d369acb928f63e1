#!/usr/bin/env node
// Interleaved A/B of two builds of ours under wrk, by proxy CPU per request (default configuration:
// log lines on, appended to a file), proxy pinned like the benchmark.
//
//   node bench/ab.mjs A_CLI B_CLI [path] [rounds] [seconds] [-- proxy flags]
//   e.g. node bench/ab.mjs /tmp/A/cli.js dist/cli.js /nostore.bin 3 8
//
// Both proxies run at once (each with its own cache directory), measured A B A B ...; the load
// average and each run's µs/req (and its user part) are printed, then the medians, of the total
// and of user time alone (a user-space change shows there with less of the loopback's noise).
// ENTRIES=N: each proxy is first given N stored entries (path + 0..N-1) and every run spreads its
// requests over all of them (the entries phase's hit cost), e.g.
//   ENTRIES=100000 node bench/ab.mjs /tmp/A/cli.js dist/cli.js '/1k.bin?entry=' 3 8 -- --max-entries 200000 --max-memory-mb 512
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, truncateSync } from 'node:fs';
import * as os from 'node:os';
import { join, resolve } from 'node:path';
import { killAllChildren, memory, pinRunnerToClientCpu } from './lib/proc.mjs';
import { populate, wrk } from './lib/client.mjs';
import { measuredRun } from './lib/abRound.mjs';
import { median } from './lib/stats.mjs';
import { startOrigin, startOurs, warmUntilHit } from './lib/systems.mjs';

pinRunnerToClientCpu();

const dashes = process.argv.indexOf('--');
const args = dashes > 0 ? process.argv.slice(2, dashes) : process.argv.slice(2);
const proxyFlags = dashes > 0 ? process.argv.slice(dashes + 1) : [];
const [aCli, bCli, path = '/nostore.bin', rounds = '3', seconds = '8'] = args;
if (!aCli || !bCli) {
  console.error('usage: node bench/ab.mjs A_CLI B_CLI [path] [rounds] [seconds] [-- proxy flags]');
  process.exit(2);
}

const spread = Number(process.env.ENTRIES ?? 0);
const work = mkdtempSync(join(os.tmpdir(), 'caching-proxy-ab-'));
chmodSync(work, 0o755);
try {
  const origin = await startOrigin(work);
  const systems = [];
  for (const [name, cli] of [['A', aCli], ['B', bCli]]) systems.push(await startOurs(work, name, proxyFlags, null, { cli: resolve(cli) }));
  for (const s of systems) {
    if (spread) await populate(s.port, origin.base + path, spread);
    else if (!path.includes('nostore')) await warmUntilHit(s, origin, path);
  }
  if (spread) spawnSync('sync');
  for (const s of systems) {
    await wrk({ dir: work, name: `warm-${s.name}`, originPort: origin.port, path, proxyPort: s.port, seconds: spread ? 6 : 3, spread });
    truncateSync(s.logFile, 0);
  }
  const results = { A: [], B: [] };
  const users = { A: [], B: [] };
  for (let round = 0; round < Number(rounds); round++) {
    for (const s of systems) {
      const m = await measuredRun(s, { dir: work, name: `run-${s.name}`, originPort: origin.port, path, seconds: Number(seconds), spread });
      results[s.name].push(m.us);
      users[s.name].push(m.userUs);
      console.log(`round ${round + 1} ${s.name}: ${Math.round(m.reqPerSec)} req/s, ${m.us.toFixed(1)} µs/req (user ${m.userUs.toFixed(1)}), errors ${m.errors}, log ${m.logBytesPerRequest.toFixed(0)} B/req, load ${os.loadavg()[0].toFixed(2)}`);
    }
  }
  const a = median(results.A);
  const b = median(results.B);
  console.log(`median A ${a.toFixed(1)} µs/req [${results.A.map((x) => x.toFixed(1)).join(', ')}], B ${b.toFixed(1)} µs/req [${results.B.map((x) => x.toFixed(1)).join(', ')}]: B/A ${(b / a).toFixed(3)}`);
  const ua = median(users.A);
  const ub = median(users.B);
  console.log(`user time only: median A ${ua.toFixed(1)} µs/req, B ${ub.toFixed(1)} µs/req: B/A ${(ub / ua).toFixed(3)}`);
  console.log(`RSS A ${Math.round(memory(systems[0].pid).rss / 1048576)} MiB, B ${Math.round(memory(systems[1].pid).rss / 1048576)} MiB`);
  for (const s of systems) await s.stop();
  await origin.stop();
} finally {
  killAllChildren();
  rmSync(work, { recursive: true, force: true });
}
