// The HTTPS phase of the benchmark (issue 13): HTTPS through interception, ours against
// mitmproxy and mockttp, all intercepting the same nginx HTTPS origin (a throwaway CA of the
// benchmark's own), each proxy pinned to the proxy CPU, the load client on the client CPU.
//
//   BENCH_ONLY=https node bench/run.mjs
//
// Two figures, each over CONNECT tunnels with TLS to the proxy (the client trusts each
// proxy's CA) and a 1 KiB object with Cache-Control: max-age=3600:
// - kept-alive: 50 tunnels, one TLS handshake each, then GETs one after another on each.
//   Ours answers from its cache (the origin's counter proves it); mitmproxy and mockttp do not
//   cache and pass every request through to the origin, as their users run them.
// - new connections: 16 workers, each repeating CONNECT + a full TLS handshake (no session
//   resumption, like a new curl or npm process) + one GET + close, to the host already seen
//   (its leaf certificate is made before the measurement).
import * as os from 'node:os';
import { CLIENT_CPU, PROXY_CPU, busyShare, cpuSeconds, cpuTimes, sleep } from './lib/proc.mjs';
import { spawnSync } from 'node:child_process';
import { readFileSync, statSync, truncateSync } from 'node:fs';
import { join } from 'node:path';
import { fmt, fmtRatio, ratio, summarize, table } from './lib/stats.mjs';
import { makeOriginCertificate, startMitmproxy, startMockttp, startOursIntercepting, tlsLoad } from './lib/tls-systems.mjs';

export { makeOriginCertificate };

const PATH = '/1k.bin';
const TESTS = [
  { key: 'keepalive', name: '1 KiB over kept-alive TLS', unit: 'req/s', load: { mode: 'keepalive', connections: 50 } },
  { key: 'newConnections', name: 'new TLS connection + 1 KiB GET', unit: 'conn/s', load: { mode: 'new', connections: 16 } },
];

/**
 * Runs the phase. `ctx`: {work, origin (with tlsPort), originTls ({ca}), results, log,
 * interleaved, seconds}. Leaves the figures in results.figures.https and every run in results.runs.
 */
export async function httpsPhase({ work, origin, originTls, results, log, interleaved, seconds }) {
  const prof = process.env.BENCH_PROFILE_DIR;
  const ours = await startOursIntercepting(work, originTls.ca, prof ? ['--cpu-prof', `--cpu-prof-dir=${prof}`] : []);
  const mockttp = await startMockttp(work, originTls.ca);
  const mitmproxy = await startMitmproxy(work, originTls.ca);
  const systems = [ours, mockttp, mitmproxy];
  for (const s of systems) log(`${s.name} intercepting https://localhost:${origin.tlsPort} on 127.0.0.1:${s.port} (pid ${s.pid})`);
  results.https = {
    ours: 'node dist/cli.js --intercept localhost --ca-dir DIR --upstream-ca ORIGIN_CA (default configuration otherwise: log lines on, stdout and stderr appended to a file)',
    mitmproxy: `mitmdump --allow-hosts "^localhost(:|$)" --set confdir=DIR --set ssl_verify_upstream_trusted_ca=ORIGIN_CA --set flow_detail=0 --set termlog_verbosity=warn`,
    mockttp: 'NODE_EXTRA_CA_CERTS=ORIGIN_CA; mockttp getLocal({https: its own CA, http2: false, recordTraffic: false}), forAnyRequest().thenPassThrough()',
    versions: peerVersions(),
  };
  try {
    results.figures.https = {};
    for (const test of TESTS) {
      // Warm-up under the same load: JITs, pools, our cache and every proxy's leaf for the host.
      for (const s of systems) {
        const w = await tlsLoad(s, origin, originTls.ca, { path: PATH, seconds: Math.min(3, seconds), ...test.load });
        if (w.responses === 0) throw new Error(`${s.name} answered nothing over HTTPS during warm-up: ${w.firstErrors.join('; ')}`);
      }
      const bySystem = await interleaved([null, ...systems], (s) => measure(test, s, origin, originTls, results, log, seconds));
      const figures = {};
      for (const [name, runs] of bySystem) {
        figures[name] = {};
        for (const f of ['perSecond', 'p50Ms', 'p99Ms', 'proxyCpuUsPerRequest', 'clientCpuShare', 'clientCeiling', 'logBytesPerRequest']) figures[name][f] = summarize(runs.map((r) => r[f]));
        for (const f of ['originRequests', 'errors', 'non200', 'requests']) figures[name][f] = runs.reduce((a, r) => a + r[f], 0);
      }
      results.figures.https[test.key] = figures;
      if (figures.ours.originRequests > 0) results.notes.push(`ours, ${test.name}: ${figures.ours.originRequests} requests reached the origin (hits expected)`);
      for (const [name, f] of Object.entries(figures)) if (f.non200 > 0 || f.errors > 0) results.notes.push(`${name}, ${test.name}: ${f.errors} errors, ${f.non200} answers not 200`);
    }
  } finally {
    for (const s of systems) await s.stop();
  }
}

function peerVersions() {
  let mockttpVersion = '?';
  try {
    mockttpVersion = JSON.parse(readFileSync(join(import.meta.dirname, 'node_modules', 'mockttp', 'package.json'), 'utf8')).version;
  } catch {
    /* reported as ? */
  }
  const mitm = spawnSync('mitmdump', ['--version'], { encoding: 'utf8' });
  return { mockttp: mockttpVersion, mitmproxy: /Mitmproxy: (\S+)/.exec(mitm.stdout ?? '')?.[1] ?? '?', nginxTls: 'TLS 1.3, ECDSA P-256 leaf' };
}

async function measure(test, system, origin, originTls, results, log, seconds) {
  const pid = system?.pid;
  const cpuBefore = pid ? cpuSeconds(pid) : NaN;
  const coresBefore = cpuTimes();
  const originBefore = await origin.count();
  const logBefore = system?.logFile ? statSync(system.logFile).size : NaN;
  const started = performance.now();
  const fromUs = Number(process.hrtime.bigint() / 1000n);
  const r = await tlsLoad(system, origin, originTls.ca, { path: PATH, seconds, ...test.load });
  const wall = (performance.now() - started) / 1000;
  const coresAfter = cpuTimes();
  const proxyCpu = pid ? cpuSeconds(pid) - cpuBefore : NaN;
  const originRequests = (await origin.count()) - originBefore;
  // Our log lines are at most 4 ms old when written: let the last batch land before counting.
  if (system?.logFile) await sleep(50);
  const logBytes = system?.logFile ? statSync(system.logFile).size - logBefore : NaN;
  if (system?.logFile) truncateSync(system.logFile, 0);
  const run = {
    test: `https ${test.key}`,
    system: system?.name ?? 'direct',
    reqPerSec: r.perSecond,
    perSecond: r.perSecond,
    p50Ms: r.p50Ms,
    p99Ms: r.p99Ms,
    requests: r.responses,
    connections: r.connections,
    errors: r.errors,
    non200: r.non200,
    originRequests,
    proxyCpuShare: proxyCpu / wall,
    proxyCpuUsPerRequest: (proxyCpu * 1e6) / r.responses,
    proxyCoreBusy: busyShare(coresBefore, coresAfter, PROXY_CPU),
    clientCoreBusy: busyShare(coresBefore, coresAfter, CLIENT_CPU),
    clientCpuShare: r.clientCpuShare,
    // What this client alone could do with a whole core at its CPU cost per response.
    clientCeiling: r.perSecond / r.clientCpuShare,
    logBytesPerRequest: logBytes / r.responses,
    loadavg: os.loadavg()[0],
    window: [fromUs, Number(process.hrtime.bigint() / 1000n)],
  };
  results.runs.push(run);
  const other = Math.max(0, run.proxyCoreBusy - (Number.isFinite(run.proxyCpuShare) ? run.proxyCpuShare : 0));
  log(
    `https ${test.key} ${run.system}: ${fmt(run.perSecond)} ${test.unit} p99 ${fmt(run.p99Ms, 2)} ms, errors ${run.errors}, non-200 ${run.non200}, origin +${originRequests}` +
      (pid ? `, proxy ${fmt(run.proxyCpuShare * 100)}% of a core (${fmt(run.proxyCpuUsPerRequest, 1)} µs/req)` : '') +
      `, client ${fmt(run.clientCpuShare * 100)}% of a core (ceiling ~${fmt(run.clientCeiling)}), others ${fmt(other * 100)}% of core ${PROXY_CPU}` +
      (Number.isFinite(run.logBytesPerRequest) ? `, log ${fmt(run.logBytesPerRequest, 0)} B/req` : ''),
  );
  return run;
}

const ROWS = [
  ['direct', 'direct (nginx over TLS, no proxy; one run)'],
  ['ours', 'caching-proxy (hits)'],
  ['mockttp', 'mockttp (pass-through)'],
  ['mitmproxy', 'mitmproxy (pass-through)'],
];

/** The HTTPS tables and targets, for run.mjs's report: {lines, targets: [[name, measured, goal, met]]}. */
export function httpsReport(figures) {
  const lines = [];
  const targets = [];
  const spread = (s) => (Number.isFinite(s?.spreadPct) ? `±${(s.spreadPct / 2).toFixed(0)}%` : '');
  const cell = (s, digits = 0) => (s && Number.isFinite(s.median) ? `${fmt(s.median, digits)} ${spread(s)}`.trim() : '–');
  for (const test of TESTS) {
    const f = figures[test.key];
    if (!f) continue;
    const rows = ROWS.filter(([k]) => f[k]).map(([k, label]) => {
      const s = f[k];
      const notes = [];
      if (k !== 'direct') notes.push(`origin +${fmt(s.originRequests)}`);
      if (Number.isFinite(s.logBytesPerRequest?.median)) notes.push(`log ${fmt(s.logBytesPerRequest.median)} B/req`);
      if (s.errors || s.non200) notes.push(`${s.errors} errors, ${s.non200} not 200`);
      return [
        label,
        cell(s.perSecond),
        cell(s.p99Ms, 2),
        k === 'direct' ? '–' : cell(s.proxyCpuUsPerRequest, 1),
        k === 'ours' ? '' : fmtRatio(ratio(f.ours?.perSecond.median, s.perSecond.median)),
        k === 'ours' || k === 'direct' ? '' : fmtRatio(ratio(s.proxyCpuUsPerRequest.median, f.ours?.proxyCpuUsPerRequest.median)),
        `${fmt(s.clientCpuShare.median * 100)}% (~${fmt(s.clientCeiling.median)})`,
        notes.join(', '),
      ];
    });
    lines.push(`HTTPS through interception: ${test.name} (${test.load.connections} ${test.load.mode === 'new' ? 'workers' : 'tunnels'}; "client": the load client's share of its core, and what it could do with the whole core)`);
    lines.push(table(['system', test.unit, 'p99 ms', 'proxy CPU µs/req', 'ours ÷ this', 'per CPU', 'client', 'note'], rows));
    lines.push('');
    const vsMitm = ratio(f.ours?.perSecond.median, f.mitmproxy?.perSecond.median);
    const vsMock = ratio(f.ours?.perSecond.median, f.mockttp?.perSecond.median);
    const cpuVsMitm = ratio(f.mitmproxy?.proxyCpuUsPerRequest.median, f.ours?.proxyCpuUsPerRequest.median);
    const cpuVsMock = ratio(f.mockttp?.proxyCpuUsPerRequest.median, f.ours?.proxyCpuUsPerRequest.median);
    const cached = f.ours?.originRequests === 0;
    if (test.key === 'keepalive') {
      targets.push([`HTTPS ${test.name}: vs mitmproxy`, fmtRatio(vsMitm), '≥ 10.00×', vsMitm >= 10 && cached]);
      targets.push([`  same, by CPU per request`, fmtRatio(cpuVsMitm), '≥ 10.00×', cpuVsMitm >= 10 && cached]);
      targets.push([`HTTPS ${test.name}: vs mockttp`, fmtRatio(vsMock), '> 1.00×', vsMock > 1 && cached]);
      targets.push([`  same, by CPU per request`, fmtRatio(cpuVsMock), '> 1.00×', cpuVsMock > 1 && cached]);
    } else {
      targets.push([`HTTPS ${test.name}: vs mitmproxy`, fmtRatio(vsMitm), '(peer)', null]);
      targets.push([`HTTPS ${test.name}: vs mockttp`, fmtRatio(vsMock), '(peer)', null]);
    }
  }
  return { lines, targets };
}
