#!/usr/bin/env node
// Profiles our proxy under wrk load and prints the functions with the most self time.
//
//   node bench/profile.mjs [hit-1k | hit-100k | nostore | nostore-spread | hit-entries] [seconds] [-- proxy flags]
//   (hit-entries: ENTRIES=100000 stored 1 KiB entries, requests spread over all of them)
//   node bench/profile.mjs [large-miss | large-hit] [transfers]   (100 MiB with curl)
//
// Starts the nginx origin and `node --cpu-prof dist/cli.js` (pinned like the benchmark), warms
// the cache, runs wrk, stops the proxy (which writes the .cpuprofile), and summarises it.
// CLI=path/to/cli.js profiles another build; BENCH_KEEP=1 keeps the work directory (and the profile).
import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import * as os from 'node:os';
import { join, resolve } from 'node:path';
import { killAllChildren, pinRunnerToClientCpu } from './lib/proc.mjs';
import { curlTransfer, populate, wrk } from './lib/client.mjs';
import { startOrigin, startOurs, warmUntilHit } from './lib/systems.mjs';

pinRunnerToClientCpu();

const scenario = process.argv[2] ?? 'hit-1k';
const seconds = Number(process.argv[3] ?? 10);
const dashes = process.argv.indexOf('--');
const proxyFlags = dashes > 0 ? process.argv.slice(dashes + 1) : [];
// nostore-spread: a different no-store URL each request (no request waits on another for the same URL).
const large = scenario === 'large-miss' || scenario === 'large-hit';
const paths = { 'large-miss': '/100m.bin?miss=', 'large-hit': '/100m.bin?hit=', 'hit-1k': '/1k.bin', 'hit-100k': '/100k.bin', nostore: '/nostore.bin', 'nostore-spread': '/nostore.bin?n=', 'hit-entries': '/1k.bin?entry=' };
const entries = Number(process.env.ENTRIES ?? 100_000);
const spread = scenario === 'nostore-spread' ? 1_000_000 : scenario === 'hit-entries' ? entries : 0;
const path = paths[scenario];
if (!path) {
  console.error(`unknown scenario ${scenario}; one of ${Object.keys(paths).join(', ')}`);
  process.exit(2);
}

const work = mkdtempSync(join(os.tmpdir(), 'caching-proxy-profile-'));
chmodSync(work, 0o755);
const profDir = join(work, 'prof');
try {
  const origin = await startOrigin(work);
  const ours = await startOurs(work, 'ours', proxyFlags, null, { cli: process.env.CLI ? resolve(process.env.CLI) : undefined, nodeArgs: ['--cpu-prof', `--cpu-prof-dir=${profDir}`] });
  if (large) {
    // Transfers instead of wrk: misses each fetch a new URL; hits repeat one stored URL (from disk).
    if (scenario === 'large-hit') await curlTransfer(`${origin.base}${path}0`, ours.port);
    await new Promise((r) => setTimeout(r, 1000));
    const fromUs = Number(process.hrtime.bigint() / 1000n);
    for (let i = 1; i <= seconds; i++) {
      const r = await curlTransfer(`${origin.base}${path}${scenario === 'large-hit' ? 0 : i}`, ours.port);
      console.log(`${scenario} ${i}: ${Math.round(r.mbPerSec)} MB/s`);
    }
    const toUs = Number(process.hrtime.bigint() / 1000n);
    await ours.stop();
    await origin.stop();
    const file = readdirSync(profDir).find((f) => f.endsWith('.cpuprofile'));
    summarize(JSON.parse(readFileSync(join(profDir, file), 'utf8')), fromUs, toUs);
    rmSync(work, { recursive: true, force: true });
    process.exit(0);
  }
  if (scenario === 'hit-entries') await populate(ours.port, origin.base + path, entries);
  else if (scenario.startsWith('hit') && !(await warmUntilHit(ours, origin, path))) console.error('warning: not served from the cache');
  // PRE="/1k.bin:10,/100k.bin:10" runs those loads first (what precedes a phase in the benchmark).
  for (const step of (process.env.PRE ?? '').split(',').filter(Boolean)) {
    const [prePath, preSeconds] = step.split(':');
    await warmUntilHit(ours, origin, prePath);
    await wrk({ dir: work, name: 'pre', originPort: origin.port, path: prePath, proxyPort: ours.port, seconds: Number(preSeconds) });
  }
  await wrk({ dir: work, name: 'warm', originPort: origin.port, path, proxyPort: ours.port, seconds: 3, spread });
  // Only samples taken while wrk ran count (V8 stamps samples with the same monotonic clock as hrtime).
  const fromUs = Number(process.hrtime.bigint() / 1000n);
  const r = await wrk({ dir: work, name: 'run', originPort: origin.port, path, proxyPort: ours.port, seconds, spread });
  const toUs = Number(process.hrtime.bigint() / 1000n);
  console.log(`${scenario}: ${Math.round(r.reqPerSec)} req/s, p99 ${r.p99Ms.toFixed(2)} ms, ${r.errors} errors`);
  await ours.stop();
  await origin.stop();
  const file = readdirSync(profDir).find((f) => f.endsWith('.cpuprofile'));
  summarize(JSON.parse(readFileSync(join(profDir, file), 'utf8')), fromUs, toUs);
} finally {
  killAllChildren();
  if (!process.env.BENCH_KEEP) rmSync(work, { recursive: true, force: true });
  else console.log(`kept ${work}`);
}

/** Self time per function (and per file), from the profile's samples. */
function summarize(profile, fromUs, toUs) {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const counts = new Map();
  let t = profile.startTime;
  let total = 0;
  profile.samples.forEach((id, i) => {
    t += profile.timeDeltas[i];
    if (t < fromUs || t > toUs) return;
    counts.set(id, (counts.get(id) ?? 0) + 1);
    total++;
  });
  if (total === 0) throw new Error('no samples fall within the wrk run (clock mismatch?)');
  const self = new Map();
  const files = new Map();
  for (const [id, n] of counts) {
    const { functionName, url, lineNumber } = byId.get(id).callFrame;
    const file = url ? url.replace(/^.*\/(node_modules\/[^/]+|dist|node:)/, '$1').replace(/^file:\/\//, '') : '(native)';
    const key = `${functionName || '(anonymous)'}  ${file}${url ? `:${lineNumber + 1}` : ''}`;
    self.set(key, (self.get(key) ?? 0) + n);
    const f = /^(node:[^/]+|\(.*\))/.test(file) ? file.split(':').slice(0, 2).join(':') : file.replace(/:\d+$/, '');
    files.set(f, (files.get(f) ?? 0) + n);
  }
  const pct = (n) => `${((n / total) * 100).toFixed(1).padStart(5)}%`;
  // Inclusive time of our own functions (dist/cli.js): what each costs with everything it calls.
  const parent = new Map();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const inclusive = new Map();
  for (const [id, n] of counts) {
    const seen = new Set();
    for (let cur = id; cur !== undefined; cur = parent.get(cur)) {
      const { functionName, url, lineNumber } = byId.get(cur).callFrame;
      if (!url.endsWith('cli.js')) continue;
      const key = `${functionName || '(anonymous)'}  dist/cli.js:${lineNumber + 1}`;
      if (seen.has(key)) continue;
      seen.add(key);
      inclusive.set(key, (inclusive.get(key) ?? 0) + n);
    }
  }
  console.log(`\n${total} samples while wrk ran (of ${profile.samples.length}); top self time:`);
  for (const [k, n] of [...self].sort((a, b) => b[1] - a[1]).slice(0, 30)) console.log(`${pct(n)}  ${k}`);
  console.log('\nour functions, inclusive time:');
  for (const [k, n] of [...inclusive].sort((a, b) => b[1] - a[1]).slice(0, 25)) console.log(`${pct(n)}  ${k}`);
  console.log('\nby file:');
  for (const [k, n] of [...files].sort((a, b) => b[1] - a[1]).slice(0, 15)) console.log(`${pct(n)}  ${k}`);
}
