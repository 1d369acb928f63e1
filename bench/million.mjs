// The million-entry phase of bench/run.mjs (BENCH_ONLY=million; issue 17, docs/BENCHMARKS.md
// "A million entries"): our proxy on a store of 1,000,000 1 KiB entries against one of 100,
// in the default configuration (log lines to a file, the default memory tier), and Traffic
// Server holding as many, side by side:
//   - start-up: spawn to listening after a clean stop and after SIGKILL (2,000 misses stored
//     since the last snapshot), then one request for a stored URL (must be a hit);
//   - a fresh hit's CPU cost: hot (100 of the million entries asked for, the memory tier holds
//     them) and cold (every request a different entry, each read from the disk store), against
//     the 100-entry store; Traffic Server the same on its own million;
//   - our RSS idle and after the runs.
// Our store is filled in-process through the cache's own storeResponse (bench/lib/fill-store.cjs:
// a million misses through the proxy would take 5 minutes); Traffic Server's through its port.
// RSS after a request for every one of the million entries takes over 3 minutes of requests: it
// is measured by scripts/bench-cache-startup.cjs, not here.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { createRequire } from 'node:module';
import { memory, sleep } from './lib/proc.mjs';
import { get, populate, wrk } from './lib/client.mjs';
import { startOurs, startTrafficServer, warmUntilHit } from './lib/systems.mjs';
import { fmt, fmtRatio, ratio, summarize, table } from './lib/stats.mjs';

const REPO = resolve(import.meta.dirname, '..');
const require = createRequire(import.meta.url);
const MILLION = Number(process.env.BENCH_MILLION ?? 1_000_000);
const SMALL = 100;
const KILL_WRITES = 2000;
const MiB = 1024 * 1024;

/** Fills `dir` with `n` entries (kept, and reused by the next run, when BENCH_MILLION_DIR names it). */
function fillOnce(dir, n, log) {
  const marker = join(dir, `.bench-filled-${n}`);
  if (existsSync(marker)) {
    log(`million: ${dir} already holds ${n} entries`);
    return null;
  }
  mkdirSync(dir, { recursive: true });
  const r = spawnSync(process.execPath, [join(REPO, 'bench/lib/fill-store.cjs'), dir, String(n)], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
  if (r.status !== 0) throw new Error(`filling ${dir} failed (${r.status})`);
  const filled = JSON.parse(r.stdout.trim().split('\n').pop());
  if (filled.stored < n) throw new Error(`filling ${dir}: ${filled.stored} of ${n} entries stored`);
  writeFileSync(marker, '');
  log(`million: stored ${n} entries in ${dir} in ${filled.seconds.toFixed(1)} s (${fmt(n / filled.seconds)}/s, storeResponse in-process)`);
  return filled.seconds;
}

function killed(p) {
  return new Promise((done) => {
    if (p.child.exitCode !== null || p.child.signalCode !== null) return done();
    p.child.once('exit', done);
    p.child.kill('SIGKILL');
  });
}

export async function millionPhase({ work, origin, results, log, interleaved, measureWrk, summarizeRuns, seconds, warmSeconds }) {
  // The fill loads the cache's modules from out/ (tsc's output).
  if (spawnSync('npm', ['run', 'compile-tests', '--silent'], { cwd: REPO, stdio: 'inherit' }).status !== 0) throw new Error('npm run compile-tests failed');
  const { URL_BASE } = require('./lib/fill-store.cjs');
  const bigDir = process.env.BENCH_MILLION_DIR ? resolve(process.env.BENCH_MILLION_DIR) : join(work, 'ours-million');
  const smallDir = join(work, 'ours-million-small');
  const fillSeconds = fillOnce(bigDir, MILLION, log);
  fillOnce(smallDir, SMALL, log);
  spawnSync('sync');
  // Our entries are http://127.0.0.1:9/...: nothing listens there, so any request not answered from the store fails.
  const storedPort = Number(new URL(URL_BASE).port);
  const storedPath = new URL(URL_BASE).pathname + new URL(URL_BASE).search;

  // Start-up, clean stop and SIGKILL interleaved.
  const startRuns = { 'after a clean stop': [], 'after SIGKILL': [] };
  for (let round = 0; round < 3; round++) {
    for (const how of Object.keys(startRuns)) {
      if (how === 'after SIGKILL') {
        // Misses stored since the last snapshot, then SIGKILL: the start replays them.
        const p = await startOurs(work, 'million-before-kill', [], bigDir, { log: 'quiet' });
        await populate(p.port, `${origin.base}/1k.bin?million-kill-${round}-`, KILL_WRITES);
        await killed(p);
      }
      const p = await startOurs(work, 'million-start', [], bigDir, { log: 'pipe' });
      const t = performance.now();
      const r = await get(`${URL_BASE}${round * 7919}`, p.port);
      const firstMs = performance.now() - t;
      await p.stop();
      const run = { test: 'million start-up', system: how, listenMs: p.listenMs, firstResponseMs: firstMs, firstWasHit: r.status === 200, loadavg: (await import('node:os')).loadavg()[0] };
      results.runs.push(run);
      startRuns[how].push(run);
      log(`million start-up ${how}: listening after ${fmt(p.listenMs)} ms, first response (a stored URL) ${fmt(firstMs, 1)} ms later, ${r.status === 200 ? 'a hit' : `status ${r.status}`}`);
    }
  }

  const small = await startOurs(work, `ours-${SMALL}-of-million`, [], smallDir);
  const big = await startOurs(work, `ours-million`, [], bigDir);
  await sleep(2000);
  const idleRss = { small: memory(small.pid).rss / MiB, big: memory(big.pid).rss / MiB };
  // Traffic Server: a directory slot per KiB of a 3 GiB store, its default 64 MiB RAM cache (ours: the default 64 MiB memory tier).
  const ats = await startTrafficServer(work, { name: 'ats-million', storage: '3G', minAverageObjectSize: 1024 });
  if (!(await warmUntilHit(ats, origin, '/1k.bin?ready'))) results.notes.push('Traffic Server (million) did not start caching');
  const started = performance.now();
  await populate(ats.port, `${origin.base}/1k.bin?m=`, MILLION, 64);
  const atsFillSeconds = (performance.now() - started) / 1000;
  log(`million: Traffic Server stored ${MILLION} entries in ${atsFillSeconds.toFixed(1)} s`);
  spawnSync('sync');

  const ours = (system, name, spread) => ({ system, name, port: system.port, pid: system.pid, logFile: system.logFile, path: storedPath, originPort: storedPort, spread });
  const theirs = (name, spread) => ({ system: ats, name, port: ats.port, pid: ats.pid, path: '/1k.bin?m=', originPort: origin.port, spread });
  const sets = [
    ours(small, `ours, ${SMALL} stored`, SMALL),
    ours(big, `ours, ${fmt(MILLION)} stored, hot (${SMALL} asked for)`, SMALL),
    ours(big, `ours, ${fmt(MILLION)} stored, cold (every request another entry)`, MILLION),
    theirs(`Traffic Server, ${fmt(MILLION)} stored, hot (${SMALL} asked for)`, SMALL),
    theirs(`Traffic Server, ${fmt(MILLION)} stored, cold`, MILLION),
  ];
  for (const set of sets) await wrk({ dir: work, name: 'million-warm', originPort: set.originPort, path: set.path, proxyPort: set.port, seconds: warmSeconds, spread: set.spread });
  const bySystem = await interleaved(sets, (set) => measureWrk('million hit cost', set, origin, set.path, { spread: set.spread, seconds, originPort: set.originPort }));
  const afterRss = { small: memory(small.pid).rss / MiB, big: memory(big.pid).rss / MiB };
  results.figures.million = {
    entries: MILLION,
    fillSeconds,
    atsFillSeconds,
    startup: Object.fromEntries(
      Object.entries(startRuns).map(([how, runs]) => [how, { listenMs: summarize(runs.map((r) => r.listenMs)), firstResponseMs: summarize(runs.map((r) => r.firstResponseMs)), firstWasHit: runs.every((r) => r.firstWasHit) }]),
    ),
    rssMiB: { idle: idleRss, afterRuns: afterRss },
    hits: summarizeRuns(bySystem, ['reqPerSec', 'p99Ms', 'proxyCpuUsPerRequest']),
    names: sets.map((s) => s.name),
  };
  for (const s of [small, big, ats]) await s.stop();
}

export function millionReport(m) {
  const lines = [];
  const targets = [];
  const cell = (s, digits = 0) => (s && Number.isFinite(s.median) ? `${fmt(s.median, digits)} ±${fmt((s.spreadPct ?? 0) / 2, 0)}%` : '–');
  lines.push(`A million entries (${fmt(m.entries)} stored 1 KiB responses; ours in the default configuration)`);
  lines.push(
    table(
      ['start-up', 'listening after ms', 'first response ms', 'first response a hit'],
      Object.entries(m.startup).map(([how, s]) => [how, cell(s.listenMs), cell(s.firstResponseMs, 1), s.firstWasHit ? 'yes' : 'NO']),
    ),
  );
  const [small, hot, cold, atsHot, atsCold] = m.names;
  const h = m.hits;
  const rows = m.names.map((k) => [k, cell(h[k].reqPerSec), cell(h[k].p99Ms, 2), cell(h[k].proxyCpuUsPerRequest, 1), k === small ? '' : fmtRatio(ratio(h[k].proxyCpuUsPerRequest.median, h[k.startsWith('ours') ? small : atsHot].proxyCpuUsPerRequest.median)), h[k].errors > 0 || h[k].originRequests > 0 ? `NOT ALL HITS (${h[k].errors} errors, ${h[k].originRequests} origin requests)` : '']);
  lines.push(table(['hits', 'req/s', 'p99 ms', 'proxy CPU µs/req', 'CPU ÷ its hot figure', 'note'], rows));
  lines.push(`our RSS: ${fmt(m.rssMiB.idle.small)} MiB idle with ${SMALL} entries, ${fmt(m.rssMiB.idle.big)} MiB idle with ${fmt(m.entries)}, ${fmt(m.rssMiB.afterRuns.big)} MiB after the runs; fill ${m.fillSeconds ? `${m.fillSeconds.toFixed(0)} s` : '(reused)'}, Traffic Server's ${m.atsFillSeconds.toFixed(0)} s`);
  lines.push('');
  for (const [how, s] of Object.entries(m.startup)) targets.push([`listening with ${fmt(m.entries)} entries, ${how}`, `${fmt(s.listenMs.median)} ms (max ${fmt(s.listenMs.max)})`, '≤ 500 ms', s.listenMs.max <= 500 && s.firstWasHit]);
  const hotRatio = ratio(h[hot].proxyCpuUsPerRequest.median, h[small].proxyCpuUsPerRequest.median);
  targets.push([`hit CPU, ${fmt(m.entries)} stored (hot) ÷ ${SMALL} stored`, fmtRatio(hotRatio), '≤ 1.10×', hotRatio <= 1.1 && h[hot].errors === 0]);
  const coldRatio = ratio(h[cold].proxyCpuUsPerRequest.median, h[small].proxyCpuUsPerRequest.median);
  targets.push([`hit CPU, ${fmt(m.entries)} stored (cold) ÷ ${SMALL} stored`, fmtRatio(coldRatio), '≤ 1.10×', coldRatio <= 1.1 && h[cold].errors === 0]);
  const atsRatio = ratio(h[atsCold].proxyCpuUsPerRequest.median, h[atsHot].proxyCpuUsPerRequest.median);
  targets.push([`  Traffic Server's cold ÷ hot, for comparison`, fmtRatio(atsRatio), '(peer)', null]);
  targets.push([`our RSS with ${fmt(m.entries)} entries (idle; after the runs)`, `${fmt(m.rssMiB.idle.big)}; ${fmt(m.rssMiB.afterRuns.big)} MiB`, '≤ 256 MiB', Math.max(m.rssMiB.idle.big, m.rssMiB.afterRuns.big) <= 256]);
  return { lines, targets };
}
