#!/usr/bin/env node
// Interleaved A/B of two builds of ours on a million-entry store, by proxy CPU per hit (default
// configuration: log lines on, appended to a file), proxy pinned like the benchmark: cold hits
// (every request another of the 1,000,000 entries), then hot ones (100 of them).
//
//   node bench/million-ab.mjs A_CLI B_CLI STORE_DIR [rounds] [seconds]
//   e.g. node bench/million-ab.mjs /tmp/A/cli.js dist/cli.js /work/million-store 3 8
//
// STORE_DIR is a store the million phase filled (BENCH_MILLION_DIR=STORE_DIR npm run bench);
// each build runs on a copy of its own (STORE_DIR-A, STORE_DIR-B, made once with cp -a).
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, truncateSync } from 'node:fs';
import * as os from 'node:os';
import { join, resolve } from 'node:path';
import { memory, pinRunnerToClientCpu } from './lib/proc.mjs';
import { wrk } from './lib/client.mjs';
import { measuredRun } from './lib/abRound.mjs';
import { median } from './lib/stats.mjs';
import { startOurs } from './lib/systems.mjs';

pinRunnerToClientCpu();
const [aCli, bCli, storeDir, rounds = '3', seconds = '8'] = process.argv.slice(2);
if (!aCli || !bCli || !storeDir || !existsSync(join(storeDir, 'store'))) {
  console.error('usage: node bench/million-ab.mjs A_CLI B_CLI STORE_DIR [rounds] [seconds]  (STORE_DIR: a filled store)');
  process.exit(2);
}
// The entries fill-store.cjs writes: http://127.0.0.1:9/1k.bin?m=N (nothing listens on port 9: a request not answered from the store fails).
const ENTRIES = 1_000_000;
const path = '/1k.bin?m=';
const originPort = 9;
const work = mkdtempSync(join(os.tmpdir(), 'caching-proxy-million-ab-'));
chmodSync(work, 0o755);
const systems = [];
for (const [name, cli] of [['A', aCli], ['B', bCli]]) {
  const copy = `${resolve(storeDir)}-${name}`;
  if (!existsSync(copy) && spawnSync('cp', ['-a', resolve(storeDir), copy], { stdio: 'inherit' }).status !== 0) throw new Error(`could not copy ${storeDir}`);
  systems.push(await startOurs(work, name, [], copy, { cli: resolve(cli) }));
}
spawnSync('sync');
try {
  for (const s of systems) {
    await wrk({ dir: work, name: `warm-${s.name}`, originPort, path, proxyPort: s.port, seconds: 5, spread: ENTRIES });
    truncateSync(s.logFile, 0);
  }
  for (const [label, spread] of [['cold', ENTRIES], ['hot', 100]]) {
    const results = { A: [], B: [] };
    for (let round = 0; round < Number(rounds); round++) {
      for (const s of systems) {
        const m = await measuredRun(s, { dir: work, name: `run-${s.name}`, originPort, path, seconds: Number(seconds), spread });
        results[s.name].push(m.us);
        console.log(`${label} round ${round + 1} ${s.name}: ${Math.round(m.reqPerSec)} req/s, ${m.us.toFixed(1)} µs/req (user ${m.userUs.toFixed(1)}), errors ${m.errors}, log ${m.logBytesPerRequest.toFixed(0)} B/req, RSS ${(memory(s.pid).rss / 2 ** 20).toFixed(0)} MiB, load ${os.loadavg()[0].toFixed(2)}`);
      }
    }
    const a = median(results.A);
    const b = median(results.B);
    console.log(`${label}: median A ${a.toFixed(1)} µs/req [${results.A.map((x) => x.toFixed(1)).join(', ')}], B ${b.toFixed(1)} [${results.B.map((x) => x.toFixed(1)).join(', ')}]: B/A ${(b / a).toFixed(3)}`);
  }
} finally {
  for (const s of systems) await s.stop();
}
