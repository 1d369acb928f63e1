#!/usr/bin/env node
// Interleaved A/B of two builds of ours, each on a store filled beforehand (for example a million
// entries from scripts/bench-cache-startup.cjs, one per build, in the record form that build writes):
// proxy CPU per fresh hit, hot (100 of the entries asked for) and cold (every request another entry).
//
//   node bench/ab-stores.mjs A_CLI A_DIR B_CLI B_DIR [entries] [rounds] [seconds]
//   e.g. node bench/ab-stores.mjs /tmp/A/cli.js /tmp/m-json dist/cli.js /tmp/m-compact 1000000 3 6
//
// The stores hold http://127.0.0.1:9/1k.bin?entry=<i> (bench-cache-startup.cjs's URLs; nothing
// listens on port 9, so any request not answered from the store is an error). Default
// configuration, log lines to a file, proxies pinned like the benchmark.
import { mkdtempSync, rmSync, truncateSync } from 'node:fs';
import * as os from 'node:os';
import { join, resolve } from 'node:path';
import { cpuSeconds, killAllChildren, memory, pinRunnerToClientCpu, sleep } from './lib/proc.mjs';
import { wrk } from './lib/client.mjs';
import { startOurs } from './lib/systems.mjs';

pinRunnerToClientCpu();

const [aCli, aDir, bCli, bDir, entries = '1000000', rounds = '3', seconds = '6'] = process.argv.slice(2);
if (!aCli || !aDir || !bCli || !bDir) {
  console.error('usage: node bench/ab-stores.mjs A_CLI A_DIR B_CLI B_DIR [entries] [rounds] [seconds]');
  process.exit(2);
}
const path = '/1k.bin?entry=';
const sets = [
  ['hot', 100],
  ['cold', Number(entries)],
];
const work = mkdtempSync(join(os.tmpdir(), 'caching-proxy-ab-stores-'));
try {
  const systems = [];
  for (const [name, cli, dir] of [['A', aCli, aDir], ['B', bCli, bDir]]) systems.push(Object.assign(await startOurs(work, name, [], resolve(dir), { cli: resolve(cli) }), { name }));
  await sleep(2000);
  for (const s of systems) for (const [, spread] of sets) await wrk({ dir: work, name: 'warm', originPort: 9, path, proxyPort: s.port, seconds: 3, spread });
  const results = {};
  for (let round = 0; round < Number(rounds); round++) {
    for (const [set, spread] of sets) {
      for (const s of systems) {
        const before = cpuSeconds(s.pid);
        const r = await wrk({ dir: work, name: `run-${s.name}`, originPort: 9, path, proxyPort: s.port, seconds: Number(seconds), spread });
        const us = ((cpuSeconds(s.pid) - before) * 1e6) / r.requests;
        truncateSync(s.logFile, 0);
        (results[`${set} ${s.name}`] ??= []).push(us);
        (results[`${set} ${s.name} p99`] ??= []).push(r.p99Ms);
        console.log(`round ${round + 1} ${set} ${s.name}: ${Math.round(r.reqPerSec)} req/s, ${us.toFixed(1)} µs/req, p99 ${r.p99Ms.toFixed(1)} ms, errors ${r.errors}, load ${os.loadavg()[0].toFixed(2)}`);
      }
    }
  }
  const median = (v) => [...v].sort((x, y) => x - y)[Math.floor(v.length / 2)];
  for (const [set] of sets) {
    const a = results[`${set} A`];
    const b = results[`${set} B`];
    console.log(`${set}: median A ${median(a).toFixed(1)} µs/req [${a.map((x) => x.toFixed(1)).join(', ')}], B ${median(b).toFixed(1)} µs/req [${b.map((x) => x.toFixed(1)).join(', ')}]: B/A ${(median(b) / median(a)).toFixed(3)}`);
    console.log(`${set} p99: A [${results[`${set} A p99`].map((x) => x.toFixed(1)).join(', ')}] ms, B [${results[`${set} B p99`].map((x) => x.toFixed(1)).join(', ')}] ms`);
  }
  console.log(`RSS A ${Math.round(memory(systems[0].pid).rss / 1048576)} MiB, B ${Math.round(memory(systems[1].pid).rss / 1048576)} MiB`);
  for (const s of systems) await s.stop();
} finally {
  killAllChildren();
  rmSync(work, { recursive: true, force: true });
}
