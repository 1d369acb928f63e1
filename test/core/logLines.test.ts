import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { formatEvent, type ResponseEvent } from '../../src/core/events';

/**
 * Response lines as the CLI and the output channel print them. formatEvent remembers the part of
 * the last response's line between the id and the duration: a run of lines for one URL, and any
 * change in the middle of a run, must read exactly as if each were formatted alone.
 */
describe('response log lines', () => {
  const response = (id: number, over: Partial<ResponseEvent> = {}): ResponseEvent => ({
    type: 'response',
    id,
    method: 'GET',
    url: 'http://example.test/a',
    status: 200,
    bytes: 1024,
    durationMs: 0.4,
    cache: 'hit; ttl=60',
    ...over,
  });

  test('a run of hits on one URL, then each field changing in turn', () => {
    // Each twice: the second line of a run is formatted from what was remembered.
    const steps: Partial<ResponseEvent>[] = [
      {},
      { durationMs: 2.6 },
      { cache: 'hit; ttl=59' },
      { cache: 'hit; ttl=59', bytes: 2048 },
      { cache: 'hit; ttl=59', bytes: 2048, status: 206 },
      { cache: 'hit; ttl=59', bytes: 2048, status: 206, method: 'HEAD' },
      { cache: 'hit; ttl=59', bytes: 2048, status: 206, method: 'HEAD', url: 'http://example.test/b' },
      { cache: 'hit; ttl=59', bytes: 2048, status: 206, method: 'HEAD', url: 'http://example.test/b', aborted: true },
      { cache: undefined },
      { cache: '' },
      {},
      { url: 'http://example.test/ü', bytes: 5 },
    ];
    let id = 0;
    const lines = steps.flatMap((over) => [formatEvent(response(++id, over)), formatEvent(response(++id, over))]);
    const expected = [
      'GET http://example.test/a 200 [hit; ttl=60] 1.0 KB 0ms',
      'GET http://example.test/a 200 [hit; ttl=60] 1.0 KB 3ms',
      'GET http://example.test/a 200 [hit; ttl=59] 1.0 KB 0ms',
      'GET http://example.test/a 200 [hit; ttl=59] 2.0 KB 0ms',
      'GET http://example.test/a 206 [hit; ttl=59] 2.0 KB 0ms',
      'HEAD http://example.test/a 206 [hit; ttl=59] 2.0 KB 0ms',
      'HEAD http://example.test/b 206 [hit; ttl=59] 2.0 KB 0ms',
      'HEAD http://example.test/b 206 [hit; ttl=59] 2.0 KB 0ms (client aborted)',
      'GET http://example.test/a 200 1.0 KB 0ms',
      'GET http://example.test/a 200 1.0 KB 0ms',
      'GET http://example.test/a 200 [hit; ttl=60] 1.0 KB 0ms',
      'GET http://example.test/ü 200 [hit; ttl=60] 5 B 0ms',
    ];
    assert.deepEqual(
      lines,
      expected.flatMap((line, i) => [`#${2 * i + 1} ${line}`, `#${2 * i + 2} ${line}`]),
    );
  });
});
