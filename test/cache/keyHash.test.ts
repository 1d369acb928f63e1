import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { hashKey } from '../../src/cache/store/keyIndex';

/** hashKey remembers its last answer (the quick pass-through asks for one key's hash twice): it must never give one key's hash for another. */
// The empty key first: the memo starts empty, and must not take '' for a remembered key.
test('hashKey: the SHA-256 of each key, asked in any order, repeated or alternating', () => {
  const sha = (key: string): string => createHash('sha256').update(key).digest('hex');
  const keys = ['', 'GET http://a.test/x', 'GET http://a.test/y', 'GET http://a.test/x', '', 'GET http://a.test/x', 'GET http://a.test/x\u00e9'];
  for (let round = 0; round < 3; round++) {
    for (const key of keys) {
      assert.equal(hashKey(key), sha(key), key);
      assert.equal(hashKey(key), sha(key), `${key} again`);
    }
  }
  // A key equal in content but built anew (a different string object) gets the same hash.
  assert.equal(hashKey(['GET ', 'http://a.test/', 'y'].join('')), sha('GET http://a.test/y'));
});
