#!/usr/bin/env node
// The benchmark of issue 5: our proxy against Traffic Server, Squid and http-proxy, side by
// side in one run, on loopback. See docs/BENCHMARKS.md for what each figure means.
//
//   npm run bench                       (installs peers, builds, runs everything: < 10 minutes)
//   BENCH_SECONDS=3 BENCH_ROUNDS=1 node bench/run.mjs   (a quick look while debugging)
//   BENCH_ONLY=hits,passthrough,browser,large,https,entries,startup    (a subset; https: bench/https.mjs)
//   BENCH_ONLY=million     (not in the default set, 6-8 minutes: 1,000,000 stored entries, issue 17;
//                           BENCH_MILLION=N for another count, BENCH_MILLION_DIR=D keeps and reuses our filled store)
import { spawnSync, execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import { join, resolve } from 'node:path';
import { busyShare, CLIENT_CPU, CPUS, cpuSeconds, cpuTimes, killAllChildren, memory, pinRunnerToClientCpu, PROXY_CPU, resetPeakRss, sleep } from './lib/proc.mjs';
import { browserLoad, curlTransfer, get, populate, wrk } from './lib/client.mjs';
import { startHttpProxy, startOrigin, startOurs, startSquid, startTrafficServer, warmUntilHit } from './lib/systems.mjs';
import { fmt, fmtRatio, ratio, summarize, table } from './lib/stats.mjs';
import { httpsPhase, httpsReport, makeOriginCertificate } from './https.mjs';
import { millionPhase, millionReport } from './million.mjs';

const REPO = resolve(import.meta.dirname, '..');

/** Bytes the files under dir take on disk (st_blocks) and their apparent sizes. */
function allocatedBytes(dir) {
  const sum = { allocated: 0, apparent: 0, files: 0 };
  for (const entry of readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (!entry.isFile()) continue;
    const st = statSync(join(entry.parentPath ?? entry.path, entry.name));
    sum.allocated += st.blocks * 512;
    sum.apparent += st.size;
    sum.files++;
  }
  return sum;
}

pinRunnerToClientCpu();

const SECONDS = Number(process.env.BENCH_SECONDS ?? 10);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const WARM_SECONDS = Math.min(3, SECONDS);
const ONLY = new Set((process.env.BENCH_ONLY ?? 'hits,passthrough,browser,large,https,entries,startup').split(','));
const ENTRIES_SMALL = 100;
const ENTRIES_LARGE = Number(process.env.BENCH_ENTRIES ?? 100_000);
const ENTRIES_SECONDS = 5;
const BROWSER_SECONDS = Math.min(5, SECONDS);
const STARTUP_ENTRIES = Number(process.env.BENCH_STARTUP_ENTRIES ?? 10_000);
const MiB = 1024 * 1024;

const t0 = performance.now();
const elapsed = () => `${((performance.now() - t0) / 1000).toFixed(0)}s`;
const log = (msg) => process.stderr.write(`[bench ${elapsed()}] ${msg}\n`);

for (const bin of ['nginx', 'squid', 'traffic_server', 'wrk', 'taskset', 'curl', 'mitmdump', 'openssl']) {
  if (spawnSync('sh', ['-c', `command -v ${bin}`]).status !== 0) {
    console.error(`bench: ${bin} is not installed; run bash bench/install.sh (npm run bench does)`);
    process.exit(2);
  }
}
if (!existsSync(join(REPO, 'dist', 'cli.js'))) {
  console.error('bench: dist/cli.js is missing; run npm run build (npm run bench does)');
  process.exit(2);
}
if (!existsSync(join(import.meta.dirname, 'node_modules', 'http-proxy')) || !existsSync(join(import.meta.dirname, 'node_modules', 'mockttp'))) {
  console.error('bench: http-proxy or mockttp is missing from bench/node_modules; run bash bench/install.sh');
  process.exit(2);
}

const work = mkdtempSync(join(os.tmpdir(), 'caching-proxy-bench-'));
chmodSync(work, 0o755);
let cleaned = false;
const cleanup = () => {
  if (cleaned) return;
  cleaned = true;
  killAllChildren();
  if (!process.env.BENCH_KEEP) rmSync(work, { recursive: true, force: true });
};
process.on('exit', cleanup);
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => process.exit(130));

const results = { startedAt: new Date().toISOString(), machine: machineInfo(), settings: { seconds: SECONDS, rounds: ROUNDS, wrk: `-t2 -c50 -d${SECONDS}s`, proxyCpu: PROXY_CPU, clientCpu: CLIENT_CPU }, runs: [], figures: {}, notes: [] };

/**
 * One wrk measurement against one system, with the evidence that makes it trustworthy: how many
 * requests reached the origin meanwhile, how much CPU the proxy used, and how busy each core was.
 */
async function measureWrk(test, system, origin, path, extra = {}) {
  return measureLoad(test, system, origin, () =>
    wrk({ dir: work, name: `${test}-${system?.name ?? 'direct'}`.replace(/\W+/g, '_'), originPort: origin.port, path, proxyPort: system?.port ?? null, seconds: SECONDS, ...extra }),
  );
}

/** The same evidence around any load: `load()` resolves with {reqPerSec, p50Ms?, p99Ms, requests, errors, ...}. */
async function measureLoad(test, system, origin, load) {
  const pid = system?.pid;
  const cpuBefore = pid ? cpuSeconds(pid) : NaN;
  const coresBefore = cpuTimes();
  const originBefore = await origin.count();
  const logBefore = system?.logFile ? statSync(system.logFile).size : NaN;
  const started = performance.now();
  const fromUs = Number(process.hrtime.bigint() / 1000n);
  const r = await load();
  const wall = (performance.now() - started) / 1000;
  const originRequests = (await origin.count()) - originBefore;
  const coresAfter = cpuTimes();
  const proxyCpu = pid ? cpuSeconds(pid) - cpuBefore : NaN;
  // Give the last batch of log lines (at most 4 ms old) time to land before counting them.
  if (system?.logFile) await sleep(50);
  const logBytes = system?.logFile ? statSync(system.logFile).size - logBefore : NaN;
  // The log grows by ~10 MB/s under load: start each measurement with an empty file (it is opened for appending).
  if (system?.logFile) truncateSync(system.logFile, 0);
  const run = {
    test,
    system: system?.name ?? 'direct',
    reqPerSec: r.reqPerSec,
    p50Ms: r.p50Ms,
    p99Ms: r.p99Ms,
    requests: r.requests,
    errors: r.errors,
    ...(r.misses !== undefined ? { misses: r.misses, hits: r.hits, connections: r.connections, non200: r.non200 } : {}),
    originRequests,
    proxyCpuShare: proxyCpu / wall,
    proxyCpuUsPerRequest: (proxyCpu * 1e6) / r.requests,
    logBytesPerRequest: logBytes / r.requests,
    proxyCoreBusy: busyShare(coresBefore, coresAfter, PROXY_CPU),
    clientCoreBusy: busyShare(coresBefore, coresAfter, CLIENT_CPU),
    loadavg: os.loadavg()[0],
    // Monotonic µs (the clock V8 stamps .cpuprofile samples with): to cut a profile to this run.
    window: [fromUs, Number(process.hrtime.bigint() / 1000n)],
  };
  results.runs.push(run);
  log(
    `${test} ${run.system}: ${fmt(run.reqPerSec)} req/s p99 ${fmt(run.p99Ms, 2)} ms, errors ${run.errors}, origin +${originRequests}` +
      (pid ? `, proxy ${fmt(run.proxyCpuShare * 100)}% of a core (${fmt(run.proxyCpuUsPerRequest, 1)} µs/req), core ${PROXY_CPU} ${fmt(run.proxyCoreBusy * 100)}% busy` : '') +
      (Number.isFinite(run.logBytesPerRequest) ? `, log ${fmt(run.logBytesPerRequest, 0)} B/req` : ''),
  );
  return run;
}

/**
 * Runs `measure(system, round)` for every system, A B C A B C ..., and groups the runs by
 * system. `null` stands for going straight to the origin: a reference measured in the first
 * round only, to keep the whole benchmark under ten minutes.
 */
async function interleaved(systems, measure) {
  const bySystem = new Map(systems.map((s) => [s?.name ?? 'direct', []]));
  for (let round = 0; round < ROUNDS; round++) {
    for (const s of systems) {
      if (s === null && round > 0) continue;
      bySystem.get(s?.name ?? 'direct').push(await measure(s, round));
    }
  }
  return bySystem;
}

function summarizeRuns(bySystem, fields) {
  const out = {};
  for (const [name, runs] of bySystem) {
    out[name] = {};
    for (const f of fields) out[name][f] = summarize(runs.map((r) => r[f]));
    out[name].originRequests = runs.reduce((a, r) => a + (r.originRequests ?? 0), 0);
    out[name].errors = runs.reduce((a, r) => a + (r.errors ?? 0), 0);
  }
  return out;
}

async function main() {
  log(`work folder ${work}; ${ROUNDS} interleaved rounds of ${SECONDS} s; proxy on CPU ${PROXY_CPU}, clients and origin on CPU ${CLIENT_CPU}`);
  const originTls = ONLY.has('https') ? makeOriginCertificate(work) : null;
  const origin = await startOrigin(work, { tls: originTls });
  log(`nginx origin on 127.0.0.1:${origin.port}`);
  results.origin = { port: origin.port };

  const needPeers = ONLY.has('hits') || ONLY.has('passthrough') || ONLY.has('browser') || ONLY.has('large');
  let ours, oursPty, oursQuiet, ats, squid, httpProxy;
  if (needPeers) {
    // BENCH_PROFILE_DIR=DIR: run ours under --cpu-prof (for diagnosis only: it costs a few %).
    const prof = process.env.BENCH_PROFILE_DIR;
    // The default configuration (log lines on, to a file) is the headline; a terminal and --quiet are extra rows.
    ours = await startOurs(work, 'ours', [], null, prof ? { nodeArgs: ['--cpu-prof', `--cpu-prof-dir=${prof}`] } : {});
    if (ONLY.has('hits') || ONLY.has('passthrough')) {
      oursPty = await startOurs(work, 'ours-pty', [], null, { log: 'pty' });
      oursQuiet = await startOurs(work, 'ours-quiet', [], null, { log: 'quiet' });
    }
    ats = await startTrafficServer(work);
    squid = await startSquid(work);
    httpProxy = await startHttpProxy();
    for (const s of [ours, oursPty, oursQuiet, ats, squid, httpProxy].filter(Boolean)) log(`${s.name} on 127.0.0.1:${s.port} (pid ${s.pid})`);
    results.ours = { args: ours.args, log: 'default --log-level info, stdout and stderr appended to a file', defaults: 'memory tier 64 MB, max object 256 MB, disk tier 1024 MB' };
  }
  if (ONLY.has('hits')) {
    results.figures.hits = {};
    for (const [object, path] of [['1 KiB', '/1k.bin'], ['100 KiB', '/100k.bin']]) {
      // The terminal and --quiet rows for the 1 KiB hit only, to keep the whole run near eight minutes.
      const systems = object === '1 KiB' ? [ours, oursPty, oursQuiet, ats, squid] : [ours, ats, squid];
      const cached = {};
      for (const s of systems) {
        cached[s.name] = await warmUntilHit(s, origin, path);
        if (!cached[s.name]) results.notes.push(`${s.name} did not serve ${path} from its cache after warm-up: its "hit" figures are pass-through figures.`);
        // Warm the JIT, connection pools and caches under the same load.
        await wrk({ dir: work, name: 'warm', originPort: origin.port, path, proxyPort: s.port, seconds: WARM_SECONDS });
      }
      log(`${object} hit: warmed (${Object.entries(cached).map(([k, v]) => `${k} ${v ? 'caches' : 'DOES NOT CACHE'}`).join(', ')})`);
      const bySystem = await interleaved([null, ...systems], (s) => measureWrk(`hit ${object}`, s, origin, path));
      results.figures.hits[object] = { cached, ...summarizeRuns(bySystem, ['reqPerSec', 'p99Ms', 'proxyCpuUsPerRequest', 'proxyCoreBusy', 'logBytesPerRequest']) };
    }
  }

  if (ONLY.has('passthrough')) {
    const path = '/nostore.bin';
    for (const s of [ours, oursQuiet, httpProxy]) await wrk({ dir: work, name: 'warm', originPort: origin.port, path, proxyPort: s.port, seconds: WARM_SECONDS });
    const bySystem = await interleaved([null, ours, oursQuiet, httpProxy], (s) => measureWrk('no-store 1 KiB', s, origin, path));
    results.figures.passthrough = summarizeRuns(bySystem, ['reqPerSec', 'p99Ms', 'proxyCpuUsPerRequest', 'proxyCoreBusy', 'logBytesPerRequest']);
    // Every pass-through request must reach the origin: a proxy that stored no-store would be cheating.
    for (const [name, runs] of bySystem) {
      const leaked = runs.reduce((a, r) => a + (r.requests - r.originRequests), 0);
      if (name !== 'direct' && leaked > runs.length * 100) results.notes.push(`${name} answered ${leaked} no-store requests without the origin.`);
    }
  }

  if (ONLY.has('browser')) {
    // Browser-like connections: the first request of each is a miss (a URL never seen), the next
    // 19 are hits on 20 stored assets; then the connection closes and another opens.
    const assets = Array.from({ length: 20 }, (_, i) => `/1k.bin?asset=${i}`);
    const systems = [ours, ats, squid];
    for (const s of systems) for (const a of assets) if (!(await warmUntilHit(s, origin, a))) results.notes.push(`${s.name} did not store ${a}`);
    const variants = [
      { name: 'misses first', misses: 1, systems },
      { name: 'hits only', misses: 0, systems: [ours] },
    ];
    results.figures.browser = {};
    for (const v of variants) {
      const bySystem = await interleaved(v.systems, (s, round) =>
        measureLoad(`browser ${v.name}`, s, origin, () =>
          browserLoad({ port: s.port, host: `127.0.0.1:${origin.port}`, seconds: BROWSER_SECONDS, connections: 48, misses: v.misses, perConnection: 20, hitPaths: assets, missPrefix: `/1k.bin?visit=${s.name.replace(/\W+/g, '')}-${v.misses}-${round}-` }),
        ),
      );
      results.figures.browser[v.name] = summarizeRuns(bySystem, ['reqPerSec', 'p99Ms', 'proxyCpuUsPerRequest', 'proxyCoreBusy', 'logBytesPerRequest']);
      for (const [name, runs] of bySystem) {
        const misses = runs.reduce((a, r) => a + r.misses, 0);
        const fromOrigin = runs.reduce((a, r) => a + r.originRequests, 0);
        results.figures.browser[v.name][name].misses = misses;
        results.figures.browser[v.name][name].hits = runs.reduce((a, r) => a + r.hits, 0);
        if (fromOrigin > misses + runs.length * 48) results.notes.push(`${name} browser ${v.name}: ${fromOrigin} origin requests for ${misses} misses (hits reached the origin)`);
        const non200 = runs.reduce((a, r) => a + r.non200, 0);
        if (non200 > 0) results.notes.push(`${name} browser ${v.name}: ${non200} answers were not 200`);
      }
    }
  }

  if (ONLY.has('large')) {
    const url = (tag) => `${origin.base}/100m.bin?r=${tag}`;
    const bySystem = await interleaved([null, ours, ats, squid, httpProxy], async (s, round) => {
      const tag = `${round}-${(s?.name ?? 'direct').replace(/\W+/g, '')}`;
      const one = async (phase) => {
        if (s) resetPeakRss(s.pid);
        const rssBefore = s ? memory(s.pid).rss : NaN;
        const before = await origin.count();
        const r = await curlTransfer(url(tag), s?.port);
        const originRequests = (await origin.count()) - before;
        const peak = s ? memory(s.pid).hwm : NaN;
        if (r.status !== 200 || r.bytes !== 100 * MiB) results.notes.push(`${s?.name ?? 'direct'} 100 MiB ${phase}: status ${r.status}, ${r.bytes} bytes`);
        return { mbPerSec: r.mbPerSec, originRequests, rssGrowthMiB: (peak - rssBefore) / MiB, status: r.status, bytes: r.bytes };
      };
      const miss = await one('miss');
      // A store may finish just after the last byte went out.
      await sleep(s?.kind === 'ours' || s?.kind === 'caching' ? 1000 : 0);
      const hit = s && s.kind !== 'passthrough' ? await one('hit') : null;
      const run = { test: '100 MiB', system: s?.name ?? 'direct', missMBps: miss.mbPerSec, hitMBps: hit?.mbPerSec ?? NaN, missOrigin: miss.originRequests, hitOrigin: hit?.originRequests ?? NaN, missRssGrowthMiB: miss.rssGrowthMiB, hitRssGrowthMiB: hit?.rssGrowthMiB ?? NaN };
      results.runs.push(run);
      log(`100 MiB ${run.system}: miss ${fmt(run.missMBps)} MB/s (origin +${run.missOrigin}, RSS +${fmt(run.missRssGrowthMiB, 1)} MiB)` + (hit ? `, hit ${fmt(run.hitMBps)} MB/s (origin +${run.hitOrigin}, RSS +${fmt(run.hitRssGrowthMiB, 1)} MiB)` : ''));
      return run;
    });
    results.figures.large = {};
    for (const [name, runs] of bySystem) {
      results.figures.large[name] = {
        missMBps: summarize(runs.map((r) => r.missMBps)),
        hitMBps: summarize(runs.map((r) => r.hitMBps)),
        missRssGrowthMiB: summarize(runs.map((r) => r.missRssGrowthMiB)),
        hitRssGrowthMiB: summarize(runs.map((r) => r.hitRssGrowthMiB)),
        hitsFromOrigin: runs.reduce((a, r) => a + (Number.isFinite(r.hitOrigin) ? r.hitOrigin : 0), 0),
      };
    }
  }

  for (const s of [ours, oursPty, oursQuiet, ats, squid, httpProxy]) await s?.stop();

  // 5 s runs (four systems, two figures): the whole benchmark must stay under ten minutes.
  if (ONLY.has('https')) await httpsPhase({ work, origin, originTls, results, log, interleaved, seconds: Math.min(5, SECONDS) });

  if (ONLY.has('entries')) {
    // Ours: two instances, same flags, memory big enough that every entry of both stays in memory.
    // Traffic Server: one instance holding both sets, its RAM cache big enough for both.
    const flags = ['--max-entries', String(ENTRIES_LARGE * 2), '--max-memory-mb', '512'];
    const small = await startOurs(work, `ours-${ENTRIES_SMALL}-entries`, flags);
    const large = await startOurs(work, `ours-${ENTRIES_LARGE}-entries`, flags);
    const atsBoth = await startTrafficServer(work, { name: 'ats-entries', ramCacheBytes: 512 * MiB });
    const sets = [
      { system: small, name: `ours, ${ENTRIES_SMALL} entries`, path: '/1k.bin?entry=', spread: ENTRIES_SMALL },
      { system: large, name: `ours, ${fmt(ENTRIES_LARGE)} entries`, path: '/1k.bin?entry=', spread: ENTRIES_LARGE },
      { system: atsBoth, name: `Traffic Server, ${ENTRIES_SMALL} entries`, path: '/1k.bin?small=', spread: ENTRIES_SMALL },
      { system: atsBoth, name: `Traffic Server, ${fmt(ENTRIES_LARGE)} entries`, path: '/1k.bin?large=', spread: ENTRIES_LARGE },
    ].map((set) => ({ ...set, port: set.system.port, pid: set.system.pid }));
    // A fresh Traffic Server stores nothing for a moment: wait until it does before filling it.
    if (!(await warmUntilHit(atsBoth, origin, '/1k.bin?ready'))) results.notes.push('Traffic Server (entries) did not start caching');
    let started = performance.now();
    for (const set of sets) await populate(set.port, origin.base + set.path, set.spread);
    const populateSeconds = (performance.now() - started) / 1000;
    log(`stored ${ENTRIES_SMALL} and ${ENTRIES_LARGE} entries in each in ${populateSeconds.toFixed(1)} s; our RSS ${fmt(memory(small.pid).rss / MiB)} vs ${fmt(memory(large.pid).rss / MiB)} MiB`);
    // The stores' files go to disk now, not during the runs (the first round was up to 2x slower otherwise).
    spawnSync('sync');
    // Requests spread evenly over every stored entry, so the large store's index is really exercised.
    for (const set of sets) await wrk({ dir: work, name: 'warm', originPort: origin.port, path: set.path, proxyPort: set.port, seconds: 2 * WARM_SECONDS, spread: set.spread });
    // 5 s runs: four systems here, and the whole benchmark must stay under ten minutes.
    const bySystem = await interleaved(sets, (set) => measureWrk('hit cost', set, origin, set.path, { spread: set.spread, seconds: ENTRIES_SECONDS }));
    results.figures.entries = {
      populateSeconds,
      rssMiB: { small: memory(small.pid).rss / MiB, large: memory(large.pid).rss / MiB },
      ...summarizeRuns(bySystem, ['reqPerSec', 'p99Ms', 'proxyCpuUsPerRequest']),
    };
    for (const s of [small, large, atsBoth]) await s.stop();
    // After a clean stop (its index snapshot written): what the store takes on disk for 1 KiB bodies (issue 17: at most 1.5x).
    const disk = allocatedBytes(join(large.cacheDir, 'store'));
    results.figures.entries.disk = { allocatedBytes: disk.allocated, apparentBytes: disk.apparent, files: disk.files, bodyBytes: ENTRIES_LARGE * 1024 };
    log(`our ${fmt(ENTRIES_LARGE)}-entry store: ${fmt(disk.allocated / MiB)} MiB allocated in ${disk.files} files for ${fmt((ENTRIES_LARGE * 1024) / MiB)} MiB of bodies`);
  }

  if (ONLY.has('startup')) {
    const flags = ['--max-entries', String(STARTUP_ENTRIES * 2)];
    const first = await startOurs(work, 'ours-startup', flags);
    let started = performance.now();
    await populate(first.port, `${origin.base}/1k.bin?startup=`, STARTUP_ENTRIES);
    log(`stored ${STARTUP_ENTRIES} entries in ${((performance.now() - started) / 1000).toFixed(1)} s`);
    await first.stop();
    const filledDir = first.cacheDir;
    const emptyDir = join(work, 'ours-startup-empty');
    const bySystem = await interleaved([{ name: 'empty cache' }, { name: `${fmt(STARTUP_ENTRIES)} entries` }], async (which, round) => {
      const empty = which.name === 'empty cache';
      const dir = empty ? `${emptyDir}-${round}` : filledDir;
      mkdirSync(dir, { recursive: true });
      // Read through a pipe: polling a log file would add its interval to the figure.
      const p = await startOurs(work, 'startup', flags, dir, { log: 'pipe' });
      const before = await origin.count();
      const t = performance.now();
      const r = await get(`${origin.base}/1k.bin?startup=${round + 1}`, p.port);
      const firstMs = performance.now() - t;
      const originRequests = (await origin.count()) - before;
      await p.stop();
      const run = { test: 'startup', system: which.name, listenMs: p.listenMs, firstResponseMs: firstMs, firstWasHit: originRequests === 0, status: r.status };
      results.runs.push(run);
      log(`start-up ${which.name}: listening after ${fmt(p.listenMs)} ms, first response ${fmt(firstMs, 1)} ms later (${originRequests === 0 ? 'hit' : 'from the origin'})`);
      return run;
    });
    results.figures.startup = {};
    for (const [name, runs] of bySystem) {
      results.figures.startup[name] = { listenMs: summarize(runs.map((r) => r.listenMs)), firstResponseMs: summarize(runs.map((r) => r.firstResponseMs)), firstWasHit: runs.every((r) => r.firstWasHit) };
    }
  }

  if (ONLY.has('million')) await millionPhase({ work, origin, results, log, interleaved, measureWrk, summarizeRuns, seconds: ENTRIES_SECONDS, warmSeconds: 2 * WARM_SECONDS });

  await origin.stop();
  results.durationSeconds = (performance.now() - t0) / 1000;
  report();
}

function report(write = true) {
  const f = results.figures;
  const out = [];
  const spread = (s) => (Number.isFinite(s?.spreadPct) ? `±${(s.spreadPct / 2).toFixed(0)}%` : '');
  const cell = (s, digits = 0) => (s && Number.isFinite(s.median) ? `${fmt(s.median, digits)} ${spread(s)}`.trim() : '–');
  const targets = [];
  const target = (name, value, goal, pass) => targets.push([name, value, goal, Number.isFinite(pass) ? (pass ? 'met' : 'MISSED') : (pass === true ? 'met' : pass === false ? 'MISSED' : '–')]);

  out.push(`Caching Proxy benchmark, ${results.startedAt}; ${results.machine.cpu} (${results.machine.cores} cores), ${results.machine.memGiB} GiB, Linux ${results.machine.kernel}, Node ${results.machine.node}`);
  out.push(`${results.settings.rounds} interleaved rounds; medians, ± half the min–max spread; wrk ${results.settings.wrk}; proxy on CPU ${results.settings.proxyCpu}, wrk/curl/origin on CPU ${results.settings.clientCpu}\n`);

  if (f.hits) {
    const rows = [];
    for (const object of Object.keys(f.hits)) {
      const h = f.hits[object];
      for (const [key, name] of SYSTEM_ROWS) {
        const s = h[key];
        if (!s) continue;
        const note = key === 'direct' ? '(nginx, no proxy; one run)' : h.cached[key] === false || s.originRequests > 0 ? `NOT CACHED (${s.originRequests} origin requests)` : logNote(s);
        const perCpu = key === 'ours' || key === 'direct' ? '' : fmtRatio(ratio(s.proxyCpuUsPerRequest.median, h.ours?.proxyCpuUsPerRequest.median));
        rows.push([`${object} hit`, name, cell(s.reqPerSec), cell(s.p99Ms, 2), key === 'direct' ? '–' : cell(s.proxyCpuUsPerRequest, 1), key === 'ours' ? '' : fmtRatio(ratio(h.ours?.reqPerSec.median, s.reqPerSec.median)), perCpu, note]);
      }
      const vsAts = ratio(h.ours?.reqPerSec.median, h['Traffic Server']?.reqPerSec.median);
      target(`${object} hit req/s vs Traffic Server`, fmtRatio(vsAts), '≥ 1.00×', vsAts >= 1 && h.ours.originRequests === 0);
      const cpuVsAts = ratio(h['Traffic Server']?.proxyCpuUsPerRequest.median, h.ours?.proxyCpuUsPerRequest.median);
      target(`  same, by CPU per request (noise-proof)`, fmtRatio(cpuVsAts), '≥ 1.00×', cpuVsAts >= 1 && h.ours.originRequests === 0);
      if (h['ours-quiet']) {
        const share = 1 - h['ours-quiet'].proxyCpuUsPerRequest.median / h.ours.proxyCpuUsPerRequest.median;
        target(`  log lines' share of a ${object} hit (CPU, file vs --quiet)`, `${fmt(share * 100, 0)}%`, '(small)', null);
      }
    }
    out.push('Cache hits ("per CPU": the other\'s proxy CPU per request ÷ ours, which other load on the machine hardly moves). Ours in the default configuration: a log line per request, to a file');
    out.push(table(['figure', 'system', 'req/s', 'p99 ms', 'proxy CPU µs/req', 'ours ÷ this', 'per CPU', 'note'], rows));
    out.push('');
  }
  if (f.passthrough) {
    const p = f.passthrough;
    const rows = SYSTEM_ROWS.filter(([k]) => p[k]).map(([k, name]) => [
      name,
      cell(p[k].reqPerSec),
      cell(p[k].p99Ms, 2),
      k === 'direct' ? '–' : cell(p[k].proxyCpuUsPerRequest, 1),
      k === 'ours' ? '' : fmtRatio(ratio(p.ours?.reqPerSec.median, p[k].reqPerSec.median)),
      k === 'ours' || k === 'direct' ? '' : fmtRatio(ratio(p[k].proxyCpuUsPerRequest.median, p.ours?.proxyCpuUsPerRequest.median)),
      logNote(p[k]),
    ]);
    out.push('Uncacheable pass-through (1 KiB, Cache-Control: no-store, one URL)');
    out.push(table(['system', 'req/s', 'p99 ms', 'proxy CPU µs/req', 'ours ÷ this', 'per CPU', 'note'], rows));
    out.push('');
    const r = ratio(p.ours?.reqPerSec.median, p['http-proxy']?.reqPerSec.median);
    target('no-store pass-through vs http-proxy', fmtRatio(r), '≥ 2.00×', r >= 2);
    const rc = ratio(p['http-proxy']?.proxyCpuUsPerRequest.median, p.ours?.proxyCpuUsPerRequest.median);
    target('  same, by CPU per request', fmtRatio(rc), '≥ 2.00×', rc >= 2);
  }
  if (f.browser) {
    const rows = [];
    for (const [variant, b] of Object.entries(f.browser)) {
      for (const [key, name] of SYSTEM_ROWS) {
        const s = b[key];
        if (!s) continue;
        const share = s.misses + s.hits > 0 ? `${fmt((100 * s.misses) / (s.misses + s.hits), 1)}% misses` : '';
        rows.push([variant, name, cell(s.reqPerSec), cell(s.p99Ms, 2), cell(s.proxyCpuUsPerRequest, 1), key === 'ours' ? '' : fmtRatio(ratio(s.proxyCpuUsPerRequest.median, b.ours?.proxyCpuUsPerRequest.median)), share, logNote(s)]);
      }
    }
    out.push('Browser-like client (1 KiB objects; 48 connections of 20 requests each, one at a time; "misses first": the first request of each connection is for a URL never seen, the other 19 are hits on 20 stored assets)');
    out.push(table(['client', 'system', 'req/s', 'p99 ms', 'proxy CPU µs/req', 'per CPU (this ÷ ours)', 'requests', 'note'], rows));
    out.push('');
  }
  if (f.large) {
    const l = f.large;
    const rows = ['direct', 'ours', 'Traffic Server', 'Squid', 'http-proxy'].filter((k) => l[k]).map((k) => [
      k === 'ours' ? 'caching-proxy' : k,
      cell(l[k].missMBps),
      k === 'direct' ? '–' : fmtRatio(ratio(l.ours?.missMBps.median, l[k].missMBps.median)),
      cell(l[k].hitMBps),
      k === 'direct' || k === 'http-proxy' ? '–' : fmtRatio(ratio(l.ours?.hitMBps.median, l[k].hitMBps.median)),
      k === 'direct' ? '–' : fmt(l[k].missRssGrowthMiB.max, 1),
      k === 'direct' || k === 'http-proxy' ? '–' : fmt(l[k].hitRssGrowthMiB.max, 1),
      k === 'Squid' ? 'hit from memory' : l[k].hitsFromOrigin > 0 ? `NOT CACHED (${l[k].hitsFromOrigin} origin requests on "hits")` : k === 'direct' ? '(nginx, no proxy; one run)' : '',
    ]);
    out.push('100 MiB transfer (curl); MB/s = 10^6 bytes/s; hits of ours and Traffic Server come from disk (object larger than the memory tier)');
    out.push(table(['system', 'miss MB/s', 'ours ÷ this', 'hit MB/s', 'ours ÷ this', 'peak RSS growth miss MiB (worst)', 'same, hit', 'note'], rows));
    out.push('');
    const miss = ratio(l.ours?.missMBps.median, l['Traffic Server']?.missMBps.median);
    const hit = ratio(l.ours?.hitMBps.median, l['Traffic Server']?.hitMBps.median);
    target('100 MiB miss MB/s vs Traffic Server', fmtRatio(miss), '≥ 1.00×', miss >= 1);
    target('100 MiB hit MB/s vs Traffic Server (disk)', fmtRatio(hit), '≥ 1.00×', hit >= 1 && l.ours.hitsFromOrigin === 0);
    const rss = Math.max(l.ours?.missRssGrowthMiB.max ?? NaN, l.ours?.hitRssGrowthMiB.max ?? NaN);
    target('peak RSS growth during 100 MiB (worst run)', `${fmt(rss, 1)} MiB`, '≤ 64 MiB', rss <= 64);
  }
  if (f.https) {
    const h = httpsReport(f.https);
    out.push(...h.lines);
    for (const t of h.targets) target(...t);
  }
  if (f.entries) {
    const e = f.entries;
    const names = Object.keys(e).filter((k) => e[k]?.reqPerSec);
    const [small, large, atsSmall, atsLarge] = names;
    const rows = names.map((k) => [k, cell(e[k].reqPerSec), cell(e[k].p99Ms, 2), cell(e[k].proxyCpuUsPerRequest, 1), e[k].originRequests > 0 ? `NOT ALL HITS (${e[k].originRequests} origin requests)` : '']);
    out.push(`Hit cost by store size (1 KiB entries, requests spread over every stored entry, ${ENTRIES_SECONDS} s runs; our RSS ${fmt(e.rssMiB.small)} vs ${fmt(e.rssMiB.large)} MiB)`);
    out.push(table(['store', 'req/s', 'p99 ms', 'proxy CPU µs/req', 'note'], rows));
    out.push('');
    if (e.disk) {
      const onDisk = ratio(e.disk.allocatedBytes, e.disk.bodyBytes);
      out.push(`Our ${large} store on disk after a clean stop: ${fmt(e.disk.allocatedBytes / MiB)} MiB allocated (${fmt(e.disk.apparentBytes / MiB)} MiB apparent) in ${e.disk.files} files, for ${fmt(e.disk.bodyBytes / MiB)} MiB of 1 KiB bodies`);
      out.push('');
      target(`disk ÷ bodies' bytes, 1 KiB bodies, ${large}`, fmtRatio(onDisk), '≤ 1.50×', onDisk <= 1.5);
    }
    const slower = ratio(e[large].proxyCpuUsPerRequest.median, e[small].proxyCpuUsPerRequest.median);
    target(`hit cost (CPU µs/req) ${large} ÷ ${small}`, fmtRatio(slower), '≤ 1.10×', slower <= 1.1 && e[large].originRequests === 0);
    const rps = ratio(e[small].reqPerSec.median, e[large].reqPerSec.median);
    target(`hit req/s ${small} ÷ ${large}`, fmtRatio(rps), '≤ 1.10×', rps <= 1.1 && e[large].originRequests === 0);
    if (atsSmall && atsLarge) {
      const theirs = ratio(e[atsLarge].proxyCpuUsPerRequest.median, e[atsSmall].proxyCpuUsPerRequest.median);
      target(`  Traffic Server's, for comparison (CPU µs/req)`, fmtRatio(theirs), '(peer)', null);
      const vsPeer = ratio(e[atsLarge].proxyCpuUsPerRequest.median, e[large].proxyCpuUsPerRequest.median);
      target(`hit at ${fmt(ENTRIES_LARGE)} entries vs Traffic Server (by CPU)`, fmtRatio(vsPeer), '(peer)', null);
    }
  }
  if (f.startup) {
    const rows = Object.entries(f.startup).map(([k, s]) => [k, cell(s.listenMs), cell(s.firstResponseMs, 1), s.firstWasHit ? 'yes' : 'no']);
    out.push('Start-up of `node dist/cli.js` (spawn to listening; then one request for a stored URL)');
    out.push(table(['cache', 'listening after ms', 'first response ms', 'first response a hit'], rows));
    out.push('');
  }
  if (f.million) {
    const m = millionReport(f.million);
    out.push(...m.lines);
    for (const t of m.targets) target(...t);
  }
  if (targets.length) {
    out.push('Targets (issue 5)');
    out.push(table(['target', 'measured', 'goal', 'status'], targets));
    out.push('');
  }
  for (const n of results.notes) out.push(`note: ${n}`);
  const busy = results.runs.filter((r) => Number.isFinite(r.proxyCoreBusy) && Number.isFinite(r.proxyCpuShare));
  if (busy.length) {
    const stolen = busy.map((r) => Math.max(0, r.proxyCoreBusy - r.proxyCpuShare));
    out.push(`noise: other processes used a median ${fmt(summarize(stolen).median * 100)}% (max ${fmt(Math.max(...stolen) * 100)}%) of the proxy's core during wrk runs; load average at the end ${os.loadavg()[0].toFixed(2)}`);
  }
  out.push(`took ${fmt(results.durationSeconds)} s`);
  results.targets = targets.map(([name, measured, goal, status]) => ({ name, measured, goal, status }));
  const text = out.join('\n');
  results.text = text;
  if (!write) {
    console.log(text);
    return;
  }
  const dir = join(import.meta.dirname, 'results');
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `${results.startedAt.replace(/[:.]/g, '-')}.json`);
  writeFileSync(file, JSON.stringify(results, null, 2));
  writeFileSync(join(dir, 'latest.json'), JSON.stringify(results, null, 2));
  console.log('\n' + text);
  console.log(`\nraw results: ${file}`);
}

/** The rows of the tables, in order: result key and label. */
const SYSTEM_ROWS = [
  ['direct', 'direct'],
  ['ours', 'caching-proxy'],
  ['ours-pty', 'caching-proxy, log to a terminal (pty)'],
  ['ours-quiet', 'caching-proxy --quiet (no log lines)'],
  ['Traffic Server', 'Traffic Server'],
  ['Squid', 'Squid'],
  ['http-proxy', 'http-proxy'],
];

/** Evidence that log lines were written: bytes of log per request. */
function logNote(s) {
  const b = s?.logBytesPerRequest?.median;
  return Number.isFinite(b) ? `log ${fmt(b)} B/req` : '';
}

function machineInfo() {
  const version = (cmd, args, re = /(\d+\.\d+(\.\d+)?)/) => {
    try {
      const r = spawnSync(cmd, args, { encoding: 'utf8' });
      return re.exec((r.stdout ?? '') + (r.stderr ?? ''))?.[1] ?? '?';
    } catch {
      return '?';
    }
  };
  let commit = '?';
  try {
    commit = execFileSync('git', ['-C', REPO, 'rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).trim();
  } catch {
    /* not a git checkout */
  }
  let httpProxyVersion = '?';
  try {
    httpProxyVersion = JSON.parse(readFileSync(join(import.meta.dirname, 'node_modules', 'http-proxy', 'package.json'), 'utf8')).version;
  } catch {
    /* reported as ? */
  }
  return {
    cpu: os.cpus()[0]?.model.trim() ?? '?',
    cores: CPUS,
    memGiB: Math.round(os.totalmem() / 1024 ** 3),
    kernel: os.release(),
    node: process.versions.node,
    commit,
    nginx: version('nginx', ['-v']),
    squid: version('squid', ['-v']),
    trafficServer: version('traffic_server', ['-V'], /Traffic Server (\d+\.\d+\.\d+)/),
    wrk: version('wrk', ['-v'], /wrk (\d+\.\d+\.\d+)/),
    curl: version('curl', ['--version']),
    httpProxy: httpProxyVersion,
    loadavgAtStart: os.loadavg()[0],
  };
}

const reportArg = process.argv.indexOf('--report');
if (reportArg > 0) {
  // Re-print the tables of a saved run: node bench/run.mjs --report bench/results/latest.json
  Object.assign(results, JSON.parse(readFileSync(process.argv[reportArg + 1], 'utf8')));
  report(false);
  process.exit(0);
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
}).finally(cleanup);
