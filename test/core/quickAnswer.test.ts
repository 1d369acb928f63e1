import { test } from 'node:test';
import assert from 'node:assert/strict';
import { reusedAnswer, serialisedAnswer, type QuickMemo, type StoredForQuick } from '../../src/core/quick/answer';
import type { QuickAnswer } from '../../src/core/quick/lane';

const memo = (): QuickMemo => ({ fixed: undefined, dated: false, answer: undefined, hotHead: undefined, outcome: '', second: -1, asked: 0 });

function stored(bodyBytes: number): StoredForQuick {
  return {
    status: 200,
    fields: { statusMessage: 'OK', head: 'Content-Type: application/octet-stream\r\nContent-Length: 999\r\nETag: "x"\r\n' },
    body: Buffer.alloc(bodyBytes, 7),
  };
}

/** One quick hit as the cache's lane makes it: the reused answer if the response is hot, else a new one. */
function hit(m: QuickMemo, s: StoredForQuick, now: number): QuickAnswer {
  return reusedAnswer(m, now, false, s.status, s.body) ?? serialisedAnswer(m, s, false, now, 5, 'hit; ttl=60');
}

/** What the client receives for an answer. */
function wire(a: QuickAnswer): string {
  return Buffer.concat([a.head, a.body ?? Buffer.alloc(0)]).toString('latin1');
}

test('quick answer: the head frames the stored body by its length, with Age, Cache-Status and a Date', () => {
  const s = stored(1024);
  const text = wire(hit(memo(), s, Date.UTC(2026, 11, 4, 12, 0, 0)));
  const [head, body] = text.split('\r\n\r\n');
  assert.deepEqual(head.split('\r\n'), [
    'HTTP/1.1 200 OK',
    'Content-Type: application/octet-stream',
    'ETag: "x"',
    'Content-Length: 1024',
    'Age: 5',
    'Cache-Status: caching-proxy; hit; ttl=60',
    'Date: Fri, 04 Dec 2026 12:00:00 GMT',
  ]);
  assert.equal(body, s.body.toString('latin1'));
});

for (const [name, bodyBytes] of [['small body copied in', 1024], ['larger body written after its head', 64 * 1024]] as const) {
  test(`quick answer (${name}): a hot response's answer is reused within its second, in memory of its own`, () => {
    const m = memo();
    const s = stored(bodyBytes);
    const now = Date.UTC(2026, 11, 4, 12, 0, 0) + 100;
    const answers = Array.from({ length: 6 }, () => hit(m, s, now));
    for (const a of answers) assert.equal(wire(a), wire(answers[0]));
    const kept = bodyBytes <= 16 * 1024 ? m.answer!.head : m.hotHead!;
    assert.ok(kept, 'the hot answer is kept');
    // Node cuts buffers under 4 KiB from a shared 8 KiB pool: a kept head must not pin one.
    assert.equal(kept.buffer.byteLength, kept.length, `a ${kept.length}-byte head kept in ${kept.buffer.byteLength} bytes`);
    assert.equal(answers[5].head, kept, 'the last hits reuse the kept head');
    // The next second makes a new answer (Age and Date change).
    const later = hit(m, s, now + 1000);
    assert.notEqual(later.head, kept);
    assert.match(wire(later), /Date: Fri, 04 Dec 2026 12:00:01 GMT/);
  });
}
