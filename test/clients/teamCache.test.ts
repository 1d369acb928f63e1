import assert from 'node:assert/strict';
import test from 'node:test';
import { curl, startOrigin, startTestProxy, waitFor, type TestOrigin } from '../helpers/net';
import { squidUnavailable, startSquid, warmUp, type Squid } from '../helpers/squid';

/**
 * The team cache (docs/TEAM.md): two developers' proxies, each with its own empty cache, both
 * with --upstream at one real Squid. What one fetched, the other gets from Squid.
 */

const skip = squidUnavailable() ?? false;

function curlHead(stdout: string): Record<string, string> {
  const head = stdout.split('\r\n\r\n')[0];
  const out: Record<string, string> = {};
  for (const line of head.split('\r\n').slice(1)) {
    const i = line.indexOf(':');
    if (i > 0) out[line.slice(0, i).toLowerCase()] = line.slice(i + 1).trim();
  }
  out[':status'] = /^HTTP\/1\.1 (\d+)/.exec(head)?.[1] ?? '';
  return out;
}

test('team cache: a miss on proxy A is stored in Squid; proxy B (its own empty cache) gets it from Squid; the origin sees one request', { skip }, async () => {
  const artifact = Buffer.alloc(300 * 1024, 'a');
  const origin: TestOrigin = await startOrigin((req, res) => {
    if (req.url === '/warmup') return res.writeHead(200, { 'Cache-Control': 'no-store', 'Content-Length': 2 }).end('ok');
    if (req.url === '/pool/main/t/tool/tool_1.0_amd64.deb') {
      // What many mirrors send: no caching headers at all, only validators.
      return res.writeHead(200, { 'Content-Type': 'application/vnd.debian.binary-package', 'Content-Length': artifact.length, 'Last-Modified': 'Mon, 01 Jan 2024 00:00:00 GMT' }).end(artifact);
    }
    const body = `shared ${req.url!.slice(-4)}`;
    res.writeHead(200, { 'Cache-Control': 'public, max-age=600', 'Content-Length': Buffer.byteLength(body) }).end(body);
  });
  let squid: Squid | null = null;
  const proxies: Awaited<ReturnType<typeof startTestProxy>>[] = [];
  try {
    squid = await startSquid();
    await warmUp(squid, `${origin.url}/warmup`);
    // The debian preset on both: the .deb is stored by us for a year; Squid decides for itself.
    const a = await startTestProxy({ upstreamProxy: squid.url, presets: ['debian'] });
    const b = await startTestProxy({ upstreamProxy: squid.url, presets: ['debian'] });
    proxies.push(a, b);

    const url = `${origin.url}/team/a001`;
    const viaA = await curl(['-x', a.url, '-D', '-', url]);
    const headA = curlHead(viaA.stdout);
    assert.equal(headA[':status'], '200', viaA.stderr);
    assert.equal(headA['cache-status'], 'caching-proxy; fwd=miss; stored');
    assert.match(headA['x-cache'] ?? '', /^MISS from /, 'A went through Squid, which did not have it');

    const viaB = await curl(['-x', b.url, '-D', '-', url]);
    const headB = curlHead(viaB.stdout);
    assert.equal(headB[':status'], '200');
    assert.ok(viaB.stdout.endsWith('shared a001'));
    assert.equal(headB['cache-status'], 'caching-proxy; fwd=miss; stored', 'B had an empty cache of its own');
    assert.match(headB['x-cache'] ?? '', /^HIT from /, 'Squid answered B from its cache');
    assert.equal(origin.count('/team/a001'), 1, 'the origin saw one request for the two developers');
    await waitFor(() => squid!.accessLog().some((l) => /TCP_(MEM_)?HIT\/200 .*\/team\/a001/.test(l)), 'Squid logging its hit');

    // A second fetch on B is B's own hit: Squid is not asked again.
    const before = squid.accessLog().length;
    const again = curlHead((await curl(['-x', b.url, '-D', '-', url])).stdout);
    assert.match(again['cache-status'], /^caching-proxy; hit/);
    assert.equal(squid.accessLog().length, before, 'a local hit never reaches Squid');

    // An artifact without caching headers: stored by both developers' proxies under the preset;
    // Squid (heuristic freshness from Last-Modified) serves the second one.
    const deb = `${origin.url}/pool/main/t/tool/tool_1.0_amd64.deb`;
    const debA = curlHead((await curl(['-x', a.url, '-D', '-', '-o', '/dev/null', deb])).stdout);
    assert.equal(debA['cache-status'], 'caching-proxy; fwd=miss; stored; rule="debian:package"');
    const debB = await curl(['-x', b.url, '-D', '-', '-o', '/dev/null', deb]);
    assert.equal(curlHead(debB.stdout)['cache-status'], 'caching-proxy; fwd=miss; stored; rule="debian:package"');
    assert.match(curlHead(debB.stdout)['x-cache'] ?? '', /^HIT from /);
    assert.equal(origin.count('/pool/main/t/tool/tool_1.0_amd64.deb'), 1);
  } finally {
    for (const p of proxies) await p.close();
    await squid?.stop();
    await origin.close();
  }
});
