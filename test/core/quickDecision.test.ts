import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decideQuick, type QuickView } from '../../src/core/quick/decision';
import { isPlainRequest, type QuickRequest } from '../../src/core/quick/request';

/** A view over fixed facts that records every question asked, to show the decision only looks. */
function view(facts: { mode?: 'serve' | 'forward-only' | 'ordinary'; fresh?: string | null; unstored?: string | null }, asked: string[] = []): QuickView<string> {
  return {
    mode: (r) => (asked.push(`mode ${r.href}`), facts.mode ?? 'serve'),
    fresh: (r) => (asked.push(`fresh ${r.href}`), facts.fresh ?? null),
    unstored: (r) => (asked.push(`unstored ${r.href}`), facts.unstored ?? null),
  };
}
const request = (headers: Record<string, string> = {}, method: 'GET' | 'HEAD' = 'GET'): QuickRequest => ({ method, href: 'http://example.com/a', headers: { host: 'example.com', ...headers } });

test('decideQuick: a fresh entry answers; a marked URL is forwarded; anything else takes the ordinary path', () => {
  assert.deepEqual(decideQuick(request(), view({ fresh: 'entry' })), { kind: 'answer', stored: 'entry' });
  assert.deepEqual(decideQuick(request({}, 'HEAD'), view({ fresh: 'entry' })), { kind: 'answer', stored: 'entry' });
  assert.deepEqual(decideQuick(request(), view({ unstored: 'fwd=miss; detail=no-store' })), { kind: 'forward', cacheStatus: 'fwd=miss; detail=no-store' });
  assert.deepEqual(decideQuick(request(), view({})), { kind: 'ordinary' });
  // A fresh entry wins over a mark (the mark is from before the URL became storable).
  assert.equal(decideQuick(request(), view({ fresh: 'entry', unstored: 'fwd=miss' })).kind, 'answer');
});

test('decideQuick: the policy decides which lanes are open', () => {
  // offline: neither lane (the ordinary path answers from what is stored, or 504).
  assert.equal(decideQuick(request(), view({ mode: 'ordinary', fresh: 'entry', unstored: 'fwd=miss' })).kind, 'ordinary');
  // policy off under a rule: nothing is served from memory, a marked URL may still be forwarded.
  assert.equal(decideQuick(request(), view({ mode: 'forward-only', fresh: 'entry' })).kind, 'ordinary');
  assert.equal(decideQuick(request(), view({ mode: 'forward-only', fresh: 'entry', unstored: 'fwd=miss' })).kind, 'forward');
});

test('decideQuick: requests that ask for more than what is stored, or carry credentials, are not forwarded quickly', () => {
  const notPlain: Record<string, string>[] = [{ 'cache-control': 'no-cache' }, { pragma: 'no-cache' }, { 'if-none-match': '"x"' }, { 'if-modified-since': 'Wed, 02 Dec 2026 00:00:00 GMT' }, { range: 'bytes=0-1' }];
  for (const headers of notPlain) {
    const asked: string[] = [];
    assert.equal(decideQuick(request(headers), view({ fresh: 'entry', unstored: 'fwd=miss' }, asked)).kind, 'ordinary', JSON.stringify(headers));
    assert.deepEqual(asked, [], 'a request that is not plain asks nothing of the cache');
  }
  // Credentials: a stored response may still answer (the store decides), but no forwarding on a mark.
  assert.equal(decideQuick(request({ authorization: 'Basic eDp5' }), view({ fresh: 'entry' })).kind, 'answer');
  assert.equal(decideQuick(request({ authorization: 'Basic eDp5' }), view({ unstored: 'fwd=miss' })).kind, 'ordinary');
});

test('decideQuick is a function of its inputs: the same request and facts give the same decision, asked in the same order', () => {
  const a: string[] = [];
  const b: string[] = [];
  assert.deepEqual(decideQuick(request(), view({ unstored: 'fwd=miss' }, a)), decideQuick(request(), view({ unstored: 'fwd=miss' }, b)));
  assert.deepEqual(a, ['mode http://example.com/a', 'fresh http://example.com/a', 'unstored http://example.com/a']);
  assert.deepEqual(a, b);
});

test('isPlainRequest: the one check of a plain request, for Node-parsed heads too', () => {
  assert.ok(isPlainRequest('GET', {}));
  assert.ok(isPlainRequest('HEAD', { 'content-length': '0' }));
  assert.ok(!isPlainRequest('POST', {}));
  assert.ok(!isPlainRequest('GET', { 'content-length': '3' }));
  assert.ok(!isPlainRequest('GET', { 'transfer-encoding': 'chunked' }));
  assert.ok(!isPlainRequest('GET', { 'cache-control': 'max-age=0' }));
});
