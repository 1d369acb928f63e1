// Where the proxy's memory goes after a request for every stored entry (issue 17's RSS target).
// Runs REPO/dist/cli.js on a store filled by scripts/bench-cache-startup.cjs, 2 s idle, then N
// requests (entry 0..N-1, 32 at a time, keep-alive) and prints, idle and after: RSS (anonymous /
// file), process.memoryUsage(), V8's spaces (committed/used), /proc/PID/smaps summed by kind;
// with NODE_ARGS=--expose-gc also after a full GC (what is live). The proxy's CPU per request.
//   node scripts/bench-cache-startup.cjs 1000000 DIR   (fill once; BENCH_CLI=0 skips its proxy runs)
//   node scripts/bench-memory-spread.cjs REPO N DIR    (NODE_ARGS: node flags for the proxy)
// Figures: docs/BENCHMARKS.md, "A million entries", session 8.
const fs = require('node:fs');
const { spawn } = require('node:child_process');
const v8 = require('node:v8');


/** /proc/PID/smaps summed by kind of mapping (V8's 256 KiB pages, the allocator's [heap], other anonymous maps, files). */
function smaps(pid) {
  const text = fs.readFileSync(`/proc/${pid}/smaps`, 'utf8');
  const groups = {};
  let cur = null;
  for (const line of text.split('\n')) {
    const head = /^([0-9a-f]+)-([0-9a-f]+) \S+ \S+ \S+ \S+\s*(.*)$/.exec(line);
    if (head) {
      const size = (parseInt(head[2], 16) - parseInt(head[1], 16)) / 1024;
      const name = head[3] || (size === 256 ? 'anon 256K (V8 page)' : size % 256 === 0 && size < 65536 ? 'anon n*256K' : size >= 65536 ? 'anon >=64M' : 'anon other');
      cur = groups[name.startsWith('/') ? 'files' : name] ??= { n: 0, rss: 0, size: 0 };
      cur.n++; cur.size += size;
      continue;
    }
    const m = /^Rss:\s+(\d+)/.exec(line);
    if (m && cur) cur.rss += Number(m[1]);
  }
  return Object.entries(groups).sort((a, b) => b[1].rss - a[1].rss).slice(0, 8).map(([k, g]) => `${k}: ${g.n} maps, ${(g.rss / 1024).toFixed(1)} MiB rss of ${(g.size / 1024).toFixed(1)}`).join('; ');
};

const http = require('node:http');
const path = require('node:path');
const wt = path.resolve(process.argv[2]);
const n = Number(process.argv[3] ?? 1_000_000);
const dir = path.resolve(process.argv[4] ?? '');
const out = path.join(require('node:os').tmpdir(), `cp-mem-${process.pid}.jsonl`);
const nodeArgs = (process.env.NODE_ARGS ?? '').split(' ').filter(Boolean);
const cliArgs = (process.env.CLI_ARGS ?? '').split(' ').filter(Boolean);
function rss(pid) {
  const s = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (k) => Number(new RegExp(`${k}:\\s+(\\d+)`).exec(s)[1]);
  return { rss: kb('VmRSS') / 1024, peak: kb('VmHWM') / 1024, anon: kb('RssAnon') / 1024, file: kb('RssFile') / 1024 };
}
async function snap(proc, label) {
  proc.kill('SIGUSR2');
  await new Promise((r) => setTimeout(r, 300));
  const lines = fs.readFileSync(out, 'utf8').trim().split('\n');
  const j = JSON.parse(lines[lines.length - 1]);
  const M = (x) => (x / 1048576).toFixed(1);
  const r = rss(proc.pid);
  const sp = Object.entries(j.spaces).filter(([, s]) => s.size > 1e6).map(([k, s]) => `${k.replace('_space', '')} ${M(s.size)}/${M(s.used)}`).join(', ');
  console.log(`${label} smaps: ${smaps(proc.pid)}`);
  console.log(`${label}: RSS ${r.rss.toFixed(0)} (peak ${r.peak.toFixed(0)}, anon ${r.anon.toFixed(0)}, file ${r.file.toFixed(0)}) MiB; heapTotal ${M(j.m.heapTotal)} heapUsed ${M(j.m.heapUsed)} external ${M(j.m.external)} arrayBuffers ${M(j.m.arrayBuffers)} malloced ${M(j.heap.malloced)} peakMalloced ${M(j.heap.peakMalloced)}; ${sp}`);
}
async function through(port, count, concurrency = 32) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency });
  let next = 0, hits = 0;
  const one = (url) => new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path: url, agent, headers: { host: '127.0.0.1:9' } }, (res) => {
      if (/\bhit\b/.test(String(res.headers['cache-status']))) hits++;
      res.resume(); res.on('end', resolve);
    });
    req.on('error', reject);
  });
  await Promise.all(Array.from({ length: concurrency }, async () => { while (next < count) await one(`http://127.0.0.1:9/1k.bin?entry=${next++}`); }));
  agent.destroy();
  return hits;
}
async function main() {
  const proc = spawn(process.execPath, [...nodeArgs, '-r', __filename, path.join(wt, 'dist/cli.js'), '--cache-dir', dir, '--port', '0', '--quiet', ...cliArgs], { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, MEM_OUT: out } });
  const port = await new Promise((resolve) => { let s = ''; proc.stdout.on('data', (c) => { s += c; const m = /listening on http:\/\/[^:]+:(\d+)/.exec(s); if (m) resolve(Number(m[1])); }); });
  await new Promise((r) => setTimeout(r, 2000));
  await snap(proc, 'idle');
  const t = performance.now();
  const cpu0 = fs.readFileSync(`/proc/${proc.pid}/stat`, 'utf8').split(' ');
  const hits = await through(port, n);
  const cpu1 = fs.readFileSync(`/proc/${proc.pid}/stat`, 'utf8').split(' ');
  const cpuMs = ((+cpu1[13] + +cpu1[14]) - (+cpu0[13] + +cpu0[14])) * 10;
  console.log(`${hits} of ${n} hits in ${((performance.now() - t) / 1000).toFixed(1)} s, proxy CPU ${(cpuMs * 1000 / n).toFixed(1)} us/request`);
  await snap(proc, 'after all');
  await new Promise((r) => setTimeout(r, 5000));
  await snap(proc, 'after all +5s');
  if (nodeArgs.includes('--expose-gc')) { fs.writeFileSync(out + '.gc', ''); await snap(proc, 'after full GC'); fs.rmSync(out + '.gc'); }
  proc.kill('SIGTERM');
  await new Promise((r) => proc.once('exit', r));
  fs.rmSync(out, { force: true });
}

if (require.main !== module) {
  // Loaded into the proxy with -r: on SIGUSR2, its figures appended to MEM_OUT.
  process.on('SIGUSR2', () => {
    if (fs.existsSync(process.env.MEM_OUT + '.gc') && global.gc) { global.gc(); global.gc(); }
    const m = process.memoryUsage();
    const spaces = Object.fromEntries(v8.getHeapSpaceStatistics().map((s) => [s.space_name, { size: s.space_size, used: s.space_used_size }]));
    const h = v8.getHeapStatistics();
    let roll = '';
    try { roll = fs.readFileSync('/proc/self/smaps_rollup', 'utf8'); } catch {}
    fs.appendFileSync(process.env.MEM_OUT, JSON.stringify({ m, heap: { total: h.total_heap_size, used: h.used_heap_size, limit: h.heap_size_limit, malloced: h.malloced_memory, peakMalloced: h.peak_malloced_memory, external: h.external_memory }, spaces, roll }) + '\n');
  });
} else {
  main();
}
