#!/usr/bin/env node
// Interleaved A/B of two builds of ours on 100 MiB misses (curl through the proxy, a new URL each
// time, stored to disk, then its first hit), by proxy CPU per miss (user + system, all threads, from /proc), with the
// peak RSS growth of each miss. Proxies pinned like the benchmark, default configuration.
//
//   node bench/large-ab.mjs A_CLI B_CLI [rounds] [-- proxy flags]
//   e.g. node bench/large-ab.mjs /tmp/A/cli.js dist/cli.js 6
//
// A B A B ...: each miss's MB/s, CPU ms (user/system), RSS growth; then the medians.
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import * as os from 'node:os';
import { join, resolve } from 'node:path';
import { killAllChildren, memory, pinRunnerToClientCpu, resetPeakRss, sleep, userSysSeconds } from './lib/proc.mjs';
import { curlTransfer } from './lib/client.mjs';
import { startOrigin, startOurs } from './lib/systems.mjs';

pinRunnerToClientCpu();

const dashes = process.argv.indexOf('--');
const args = dashes > 0 ? process.argv.slice(2, dashes) : process.argv.slice(2);
const proxyFlags = dashes > 0 ? process.argv.slice(dashes + 1) : [];
const [aCli, bCli, rounds = '4'] = args;
if (!aCli || !bCli) {
  console.error('usage: node bench/large-ab.mjs A_CLI B_CLI [rounds] [-- proxy flags]');
  process.exit(2);
}
const MiB = 1024 * 1024;

/** [user, system] CPU seconds of a process (all threads), or of one of its threads. */
function cpu(pid, tid = null) {
  const { user, sys } = userSysSeconds(pid, tid);
  return [user, sys];
}
const sum = ([u, s]) => u + s;

const work = mkdtempSync(join(os.tmpdir(), 'caching-proxy-large-ab-'));
chmodSync(work, 0o755);
try {
  const origin = await startOrigin(work);
  const systems = [];
  for (const [name, cli] of [['A', aCli], ['B', bCli]]) systems.push(await startOurs(work, name, proxyFlags, null, { cli: resolve(cli) }));
  // One warm-up miss each (JIT, pools), not counted.
  for (const s of systems) await curlTransfer(`${origin.base}/100m.bin?warm=${s.name}`, s.port);
  await sleep(1000);
  const results = { A: [], B: [] };
  for (let round = 0; round < Number(rounds); round++) {
    for (const s of systems) {
      resetPeakRss(s.pid);
      const rss = memory(s.pid).rss;
      const [u0, s0] = cpu(s.pid);
      const main0 = sum(cpu(s.pid, s.pid));
      const r = await curlTransfer(`${origin.base}/100m.bin?ab=${round}-${s.name}`, s.port);
      // The store's rename and journal write come just after the last byte.
      await sleep(300);
      const [u1, s1] = cpu(s.pid);
      const main = (sum(cpu(s.pid, s.pid)) - main0) * 1000;
      const growth = (memory(s.pid).hwm - rss) / MiB;
      const ms = ((u1 - u0) + (s1 - s0)) * 1000;
      const ok = r.status === 200 && r.bytes === 100 * MiB;
      // Then the first hit, as the benchmark's large phase measures it.
      resetPeakRss(s.pid);
      const hitRss = memory(s.pid).rss;
      const h0 = sum(cpu(s.pid));
      const h = await curlTransfer(`${origin.base}/100m.bin?ab=${round}-${s.name}`, s.port);
      const hitMs = (sum(cpu(s.pid)) - h0) * 1000;
      const hitGrowth = (memory(s.pid).hwm - hitRss) / MiB;
      results[s.name].push({ ms, mbps: r.mbPerSec, growth, user: (u1 - u0) * 1000, sys: (s1 - s0) * 1000, main, hitMs, hitMbps: h.mbPerSec, hitGrowth });
      console.log(`round ${round + 1} ${s.name}: ${Math.round(r.mbPerSec)} MB/s, CPU ${ms.toFixed(0)} ms (user ${((u1 - u0) * 1000).toFixed(0)}, sys ${((s1 - s0) * 1000).toFixed(0)}; main thread ${main.toFixed(0)}, others ${(ms - main).toFixed(0)}), RSS +${growth.toFixed(1)} MiB${ok ? '' : ` FAILED ${r.status} ${r.bytes}`}, hit ${Math.round(h.mbPerSec)} MB/s ${hitMs.toFixed(0)} ms RSS +${hitGrowth.toFixed(1)}${h.status === 200 && h.bytes === 100 * MiB ? '' : ' FAILED'}, load ${os.loadavg()[0].toFixed(2)}`);
    }
  }
  const median = (v) => [...v].sort((x, y) => x - y)[Math.floor(v.length / 2)];
  const m = (name, k) => median(results[name].map((x) => x[k]));
  for (const n of ['A', 'B']) console.log(`median ${n}: CPU ${m(n, 'ms').toFixed(0)} ms/miss (user ${m(n, 'user').toFixed(0)}, sys ${m(n, 'sys').toFixed(0)}; main thread ${m(n, 'main').toFixed(0)}) [${results[n].map((x) => x.ms.toFixed(0)).join(', ')}], ${m(n, 'mbps').toFixed(0)} MB/s, RSS growth max ${Math.max(...results[n].map((x) => x.growth)).toFixed(1)} MiB; hit CPU ${m(n, 'hitMs').toFixed(0)} ms, ${m(n, 'hitMbps').toFixed(0)} MB/s, RSS growth max ${Math.max(...results[n].map((x) => x.hitGrowth)).toFixed(1)} MiB`);
  console.log(`B/A miss CPU ${(m('B', 'ms') / m('A', 'ms')).toFixed(3)}, MB/s ${(m('B', 'mbps') / m('A', 'mbps')).toFixed(3)}; hit CPU ${(m('B', 'hitMs') / m('A', 'hitMs')).toFixed(3)}, MB/s ${(m('B', 'hitMbps') / m('A', 'hitMbps')).toFixed(3)}`);
  for (const s of systems) await s.stop();
  await origin.stop();
} finally {
  killAllChildren();
  rmSync(work, { recursive: true, force: true });
}
