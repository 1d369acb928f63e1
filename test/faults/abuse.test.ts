import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnProxy, type ChildProxy } from './lib/child';
import { Ledger, probe } from './lib/judge';
import { mutation } from './lib/mutate';
import { startRecorder, type Recorder } from './lib/wire';
import { viaProxy } from '../helpers/net';

/**
 * Malformed and mutated requests against the real CLI proxy. Every answer must be a 4xx or a
 * closed connection, and the origin must only ever receive what a strict RFC 9112 reader
 * reads from the client's bytes (lib/strictHttp.ts): no smuggling, no silently changed request.
 */

let origin: Recorder;
let proxy: ChildProxy;
let host: string;
/** The fuzzed proxy sends everything to this recorder as its upstream proxy: whatever host a mutation names, no traffic leaves it. */
let upstream: Recorder;
let fuzzProxy: ChildProxy;

before(async () => {
  origin = await startRecorder();
  host = `127.0.0.1:${origin.port}`;
  proxy = await spawnProxy(['--memory-only', '--timeout', '2', '--log-level', 'error']);
  upstream = await startRecorder();
  fuzzProxy = await spawnProxy(['--memory-only', '--timeout', '2', '--log-level', 'error', '--upstream', `http://127.0.0.1:${upstream.port}`]);
});

after(async () => {
  await proxy?.stop();
  await fuzzProxy?.stop();
  await origin?.close();
  await upstream?.close();
});

interface Case {
  name: string;
  bytes: string;
  /** The exact status required ('close': the connection is closed with no response). */
  expect?: number | 'close' | 'forwarded';
}

function corpus(h: string): Case[] {
  const big = 'a'.repeat(20_000);
  const chunk = (data: string) => `${Buffer.byteLength(data, 'latin1').toString(16)}\r\n${data}\r\n`;
  const smuggled = `GET /smuggled HTTP/1.1\r\nHost: ${h}\r\n\r\n`;
  return [
    // request lines
    { name: 'HTTP/0.9 request line', bytes: `GET http://${h}/a\r\n\r\n`, expect: 400 },
    { name: 'HTTP/2.0 in an HTTP/1 request line', bytes: `GET http://${h}/a HTTP/2.0\r\nHost: ${h}\r\n\r\n`, expect: 400 },
    { name: 'HTTP/1.2', bytes: `GET http://${h}/a HTTP/1.2\r\nHost: ${h}\r\n\r\n`, expect: 400 },
    { name: 'absurd version', bytes: `GET http://${h}/a HTTP/99999999999.1\r\nHost: ${h}\r\n\r\n`, expect: 400 },
    { name: 'extra word in request line', bytes: `GET http://${h}/a HTTP/1.1 x\r\nHost: ${h}\r\n\r\n`, expect: 400 },
    { name: 'lower-case method', bytes: `get http://${h}/a HTTP/1.1\r\nHost: ${h}\r\n\r\n`, expect: 400 },
    { name: 'NUL in method', bytes: `G\0ET http://${h}/a HTTP/1.1\r\nHost: ${h}\r\n\r\n`, expect: 400 },
    { name: 'space in target', bytes: `GET http://${h}/a b HTTP/1.1\r\nHost: ${h}\r\n\r\n`, expect: 400 },
    { name: 'control byte in target', bytes: `GET http://${h}/a\x01b HTTP/1.1\r\nHost: ${h}\r\n\r\n`, expect: 400 },
    { name: 'DEL in target', bytes: `GET http://${h}/a\x7f HTTP/1.1\r\nHost: ${h}\r\n\r\n`, expect: 400 },
    { name: 'NUL in target', bytes: `GET http://${h}/a\0 HTTP/1.1\r\nHost: ${h}\r\n\r\n`, expect: 400 },
    { name: 'bare LF line ends', bytes: `GET http://${h}/a HTTP/1.1\nHost: ${h}\n\n`, expect: 400 },
    { name: 'bare CR in the head', bytes: `GET http://${h}/a HTTP/1.1\r\nHost: ${h}\rX: y\r\n\r\n`, expect: 400 },
    { name: 'relative target (not a proxy request)', bytes: `GET a/b HTTP/1.1\r\nHost: ${h}\r\n\r\n`, expect: 400 },
    { name: 'ftp scheme', bytes: `GET ftp://${h}/a HTTP/1.1\r\nHost: ${h}\r\n\r\n`, expect: 400 },
    { name: 'absolute URL without a host', bytes: `GET http:///a HTTP/1.1\r\nHost: ${h}\r\n\r\n`, expect: 400 },
    // field lines
    { name: 'space before colon', bytes: `GET http://${h}/a HTTP/1.1\r\nHost : ${h}\r\n\r\n`, expect: 400 },
    { name: 'invalid field name', bytes: `GET http://${h}/a HTTP/1.1\r\nHost: ${h}\r\nX(y): 1\r\n\r\n`, expect: 400 },
    { name: 'empty field name', bytes: `GET http://${h}/a HTTP/1.1\r\nHost: ${h}\r\n: 1\r\n\r\n`, expect: 400 },
    { name: 'NUL in field value', bytes: `GET http://${h}/a HTTP/1.1\r\nHost: ${h}\r\nX: a\0b\r\n\r\n`, expect: 400 },
    { name: 'control byte in field value', bytes: `GET http://${h}/a HTTP/1.1\r\nHost: ${h}\r\nX: a\x01b\r\n\r\n`, expect: 400 },
    { name: 'obs-fold', bytes: `GET http://${h}/a HTTP/1.1\r\nHost: ${h}\r\nX: a\r\n b\r\n\r\n`, expect: 400 },
    { name: 'obs-fold as the first field', bytes: `GET http://${h}/a HTTP/1.1\r\n X: a\r\nHost: ${h}\r\n\r\n`, expect: 400 },
    { name: 'no Host in HTTP/1.1', bytes: `GET http://${h}/a HTTP/1.1\r\n\r\n`, expect: 400 },
    { name: 'two Host fields', bytes: `GET /a HTTP/1.1\r\nHost: ${h}\r\nHost: evil.test\r\n\r\n`, expect: 400 },
    { name: 'two Authorization fields', bytes: `GET http://${h}/a HTTP/1.1\r\nHost: ${h}\r\nAuthorization: Bearer a\r\nAuthorization: Bearer b\r\n\r\n`, expect: 400 },
    { name: 'two User-Agent fields', bytes: `GET http://${h}/a HTTP/1.1\r\nHost: ${h}\r\nUser-Agent: a\r\nUser-Agent: b\r\n\r\n`, expect: 400 },
    { name: 'two Content-Type fields', bytes: `POST http://${h}/a HTTP/1.1\r\nHost: ${h}\r\nContent-Type: a/b\r\nContent-Type: c/d\r\nContent-Length: 1\r\n\r\nx`, expect: 400 },
    // framing and smuggling
    { name: 'CL.TE', bytes: `POST http://${h}/a HTTP/1.1\r\nHost: ${h}\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nG`, expect: 400 },
    { name: 'TE.CL', bytes: `POST http://${h}/a HTTP/1.1\r\nHost: ${h}\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n8\r\nSMUGGLED\r\n0\r\n\r\n`, expect: 400 },
    { name: 'TE with space before colon', bytes: `POST http://${h}/a HTTP/1.1\r\nHost: ${h}\r\nContent-Length: 4\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n`, expect: 400 },
    { name: 'TE with vertical tab', bytes: `POST http://${h}/a HTTP/1.1\r\nHost: ${h}\r\nTransfer-Encoding: \x0bchunked\r\n\r\n0\r\n\r\n`, expect: 400 },
    { name: 'TE xchunked', bytes: `POST http://${h}/a HTTP/1.1\r\nHost: ${h}\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n`, expect: 400 },
    { name: 'TE chunked, identity', bytes: `POST http://${h}/a HTTP/1.1\r\nHost: ${h}\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n`, expect: 400 },
    { name: 'TE chunked twice', bytes: `POST http://${h}/a HTTP/1.1\r\nHost: ${h}\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`, expect: 400 },
    { name: 'TE gzip, chunked (a coding the proxy cannot forward)', bytes: `POST http://${h}/a HTTP/1.1\r\nHost: ${h}\r\nTransfer-Encoding: gzip, chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n`, expect: 501 },
    { name: 'TE in HTTP/1.0', bytes: `POST http://${h}/a HTTP/1.0\r\nHost: ${h}\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n`, expect: 400 },
    { name: 'duplicate Content-Length, same value', bytes: `POST http://${h}/a HTTP/1.1\r\nHost: ${h}\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc`, expect: 400 },
    { name: 'duplicate Content-Length, different values', bytes: `POST http://${h}/a HTTP/1.1\r\nHost: ${h}\r\nContent-Length: 3\r\nContent-Length: 30\r\n\r\nabc`, expect: 400 },
    { name: 'Content-Length list', bytes: `POST http://${h}/a HTTP/1.1\r\nHost: ${h}\r\nContent-Length: 3, 3\r\n\r\nabc`, expect: 400 },
    { name: 'negative Content-Length', bytes: `POST http://${h}/a HTTP/1.1\r\nHost: ${h}\r\nContent-Length: -1\r\n\r\nabc`, expect: 400 },
    { name: 'Content-Length with sign', bytes: `POST http://${h}/a HTTP/1.1\r\nHost: ${h}\r\nContent-Length: +3\r\n\r\nabc`, expect: 400 },
    { name: 'hex Content-Length', bytes: `POST http://${h}/a HTTP/1.1\r\nHost: ${h}\r\nContent-Length: 0x3\r\n\r\nabc`, expect: 400 },
    { name: 'absurd Content-Length', bytes: `POST http://${h}/a HTTP/1.1\r\nHost: ${h}\r\nContent-Length: 99999999999999999999999\r\n\r\nabc`, expect: 400 },
    { name: 'bad chunk size', bytes: `POST http://${h}/a HTTP/1.1\r\nHost: ${h}\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n`, expect: 400 },
    { name: 'negative chunk size', bytes: `POST http://${h}/a HTTP/1.1\r\nHost: ${h}\r\nTransfer-Encoding: chunked\r\n\r\n-3\r\nabc\r\n0\r\n\r\n`, expect: 400 },
    { name: 'absurd chunk size', bytes: `POST http://${h}/a HTTP/1.1\r\nHost: ${h}\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffffffff\r\nabc\r\n0\r\n\r\n`, expect: 400 },
    { name: '0x chunk size', bytes: `POST http://${h}/a HTTP/1.1\r\nHost: ${h}\r\nTransfer-Encoding: chunked\r\n\r\n0x3\r\nabc\r\n0\r\n\r\n`, expect: 400 },
    { name: 'chunk data overrun', bytes: `POST http://${h}/a HTTP/1.1\r\nHost: ${h}\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcdef\r\n0\r\n\r\n`, expect: 400 },
    { name: 'bare LF after chunk size', bytes: `POST http://${h}/a HTTP/1.1\r\nHost: ${h}\r\nTransfer-Encoding: chunked\r\n\r\n3\nabc\n0\n\n`, expect: 400 },
    { name: 'upgrade request with a body', bytes: `GET http://${h}/ws HTTP/1.1\r\nHost: ${h}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nContent-Length: 5\r\n\r\nhello`, expect: 400 },
    // sizes and non-HTTP bytes
    { name: 'oversized field', bytes: `GET http://${h}/a HTTP/1.1\r\nHost: ${h}\r\nX-Big: ${big}\r\n\r\n`, expect: 431 },
    { name: 'many fields', bytes: `GET http://${h}/a HTTP/1.1\r\nHost: ${h}\r\n${'X-A: 1\r\n'.repeat(3000)}\r\n`, expect: 431 },
    { name: 'oversized URL', bytes: `GET http://${h}/${big} HTTP/1.1\r\nHost: ${h}\r\n\r\n`, expect: 431 },
    { name: 'TLS ClientHello', bytes: '\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03' + 'x'.repeat(32), expect: 400 },
    { name: 'SSH banner', bytes: 'SSH-2.0-OpenSSH_9.6\r\n', expect: 400 },
    { name: 'binary noise', bytes: '\x00\xff\xfe\x01\x02\r\n\r\n', expect: 400 },
    // well-formed oddities: forwarded exactly as a strict reader reads them
    { name: 'empty lines before the request-line', bytes: `\r\n\r\nGET http://${h}/lead HTTP/1.1\r\nHost: ${h}\r\n\r\n`, expect: 'forwarded' },
    { name: 'obs-text in a field value', bytes: `GET http://${h}/obs HTTP/1.1\r\nHost: ${h}\r\nX-Name: caf\xe9\r\n\r\n`, expect: 'forwarded' },
    { name: 'chunk extensions and trailers', bytes: `POST http://${h}/chunks HTTP/1.1\r\nHost: ${h}\r\nTransfer-Encoding: chunked\r\n\r\n3;a=b\r\nabc\r\n0\r\nX-T: 1\r\n\r\n`, expect: 'forwarded' },
    { name: 'Content-Length with leading zeros', bytes: `POST http://${h}/zeros HTTP/1.1\r\nHost: ${h}\r\nContent-Length: 003\r\n\r\nabc`, expect: 'forwarded' },
    { name: 'pipelined requests', bytes: `GET http://${h}/p1 HTTP/1.1\r\nHost: ${h}\r\n\r\nPOST http://${h}/p2 HTTP/1.1\r\nHost: ${h}\r\nContent-Length: 2\r\n\r\nhiGET http://${h}/p3 HTTP/1.1\r\nHost: ${h}\r\nConnection: close\r\n\r\n`, expect: 'forwarded' },
    { name: 'DELETE with a chunked body that spells a request', bytes: `DELETE http://${h}/del HTTP/1.1\r\nHost: ${h}\r\nTransfer-Encoding: chunked\r\n\r\n${chunk(smuggled)}0\r\n\r\n`, expect: 'forwarded' },
    { name: 'GET with a chunked body that spells a request', bytes: `GET http://${h}/get-body HTTP/1.1\r\nHost: ${h}\r\nTransfer-Encoding: chunked\r\n\r\n${chunk(smuggled)}0\r\n\r\n`, expect: 'forwarded' },
    { name: 'Expect: 100-continue with a non-ASCII field', bytes: `PUT http://${h}/expect HTTP/1.1\r\nHost: ${h}\r\nExpect: 100-continue\r\nX-Name: caf\xe9\r\nContent-Length: 4\r\n\r\nbody`, expect: 'forwarded' },
    { name: 'Connection-nominated fields are dropped', bytes: `GET http://${h}/nominated HTTP/1.1\r\nHost: ${h}\r\nConnection: X-Secret\r\nX-Secret: 1\r\nKeep-Alive: timeout=5\r\n\r\n`, expect: 'forwarded' },
  ];
}

test('abuse corpus: each malformed request gets its precise 4xx and nothing reaches the origin', async () => {
  const ledger = new Ledger();
  const failures: string[] = [];
  const before = origin.received.length;
  for (const c of corpus(host)) {
    const bytes = Buffer.from(c.bytes, 'latin1');
    const { plan, exchange, problem } = await probe(proxy.port, bytes, ledger);
    if (problem) failures.push(`${c.name}: ${problem}`);
    const n = plan.reading.requests.length;
    if (c.expect === 'forwarded') {
      if (plan.reading.tail.kind !== 'end' || n === 0) failures.push(`${c.name}: the strict reader does not accept this case (${JSON.stringify(plan.reading.tail)})`);
      const statuses = exchange.responses.map((r) => r.status);
      if (statuses.length !== n || statuses.some((s) => s !== 200)) failures.push(`${c.name}: expected ${n} × 200, got ${JSON.stringify(statuses)}`);
    } else {
      const got = exchange.responses[0]?.status ?? (exchange.closed ? 'close' : 'no answer');
      if (got !== c.expect) failures.push(`${c.name}: expected ${c.expect}, got ${got}`);
      const text = exchange.responses[0]?.body.toString('utf8') ?? '';
      if (typeof c.expect === 'number' && !/[a-z]{3}/i.test(text)) failures.push(`${c.name}: the ${c.expect} has no readable explanation`);
    }
  }
  await new Promise((r) => setTimeout(r, 100));
  ledger.settle(origin);
  failures.push(...ledger.problems);
  const forwardedCases = corpus(host).filter((c) => c.expect === 'forwarded').length;
  assert.ok(origin.received.length - before >= forwardedCases, 'the well-formed oddities reached the origin');
  assert.deepEqual(failures, []);
  assert.ok(proxy.alive(), 'the proxy is still running');
  const r = await viaProxy(proxy.port, `http://${host}/after-corpus`);
  assert.equal(r.status, 200);
});

test('seeded mutations: >= 10,000 mutated requests, each a 4xx/close or forwarded exactly as a strict parser reads it', async () => {
  const seed = Number(process.env.FUZZ_SEED ?? 0x5eed);
  const count = Math.max(10_000, Number(process.env.FUZZ_COUNT ?? 10_000));
  const budgetMs = Number(process.env.FUZZ_BUDGET_MS ?? 150_000);
  const concurrency = 24;
  const ledger = new Ledger();
  const failures: string[] = [];
  const tally = { forwarded: 0, rejected: 0, closed: 0, incomplete: 0 };
  const deadline = Date.now() + budgetMs;
  let next = 0;
  const worker = async () => {
    while (next < count && Date.now() < deadline && failures.length < 20) {
      const n = next++;
      const bytes = mutation(seed, n, 'fuzz.test');
      const { plan, exchange, problem } = await probe(fuzzProxy.port, bytes, ledger, 2500);
      if (problem) failures.push(`mutation #${n} (FUZZ_SEED=${seed}): ${problem}\n    sent: ${JSON.stringify(bytes.toString('latin1')).slice(0, 500)}`);
      if (plan.reading.tail.kind === 'incomplete' && plan.reading.requests.length === 0) tally.incomplete++;
      else if (exchange.responses.some((r) => r.status === 200)) tally.forwarded++;
      else if (exchange.responses.length) tally.rejected++;
      else tally.closed++;
      if (n % 500 === 0) ledger.settle(upstream);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  await new Promise((r) => setTimeout(r, 200));
  ledger.settle(upstream);
  failures.push(...ledger.problems.slice(0, 20));
  console.log(`fuzz: seed ${seed}, ${next} mutations: ${JSON.stringify(tally)}, origin received ${upstream.received.length}`);
  assert.deepEqual(failures, []);
  assert.ok(next >= count, `only ${next} of ${count} mutations ran within ${budgetMs} ms`);
  assert.ok(tally.forwarded > 500 && tally.rejected > 500, 'the mutations cover both forwarded and rejected requests');
  assert.ok(fuzzProxy.alive(), 'the proxy is still running');
  const r = await viaProxy(fuzzProxy.port, `http://fuzz.test/after-fuzz`);
  assert.equal(r.status, 200);

  // No cache entry was poisoned: every URL the origin was asked for that is now stored holds the
  // origin's answer for that very URL (its body names the request it answered).
  const asked = [...new Set(upstream.received.filter((x) => x.request.method === 'GET' && /^http:\/\//.test(x.request.target)).map((x) => x.request.target))];
  let cached = 0;
  for (const url of asked.slice(0, 3000)) {
    const got = await viaProxy(fuzzProxy.port, url, { headers: { 'cache-control': 'only-if-cached' } }).catch(() => null);
    if (!got || got.status !== 200) continue;
    cached++;
    assert.equal(got.text, `GET ${url}`, `the cached answer for ${url} is that URL's own`);
  }
  console.log(`fuzz: ${cached} of ${Math.min(asked.length, 3000)} fetched URLs were in the cache, each with its own answer`);
  assert.ok(cached > 100, 'the fuzzed proxy cached responses, so the poisoning check means something');
});
