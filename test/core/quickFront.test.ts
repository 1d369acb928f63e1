import { test } from 'node:test';
import assert from 'node:assert/strict';
import { plainPathStart as plainPathStartOf } from '../../src/core/quick/request';

const plainPathStart = (target: string): number => plainPathStartOf(Buffer.from(target, 'latin1'));

/**
 * The quick path skips `new URL` for targets plainPathStart accepts and builds the href from the
 * normalised authority and the target's own path and query. That is only right if `new URL`
 * would have written that path and query unchanged: checked here against `new URL` itself, over
 * targets built from the characters it escapes or rewrites.
 */
test('plainPathStart: every target it accepts has the href new URL gives it; it accepts the plain ones', () => {
  const authorities = ['example.com', 'Example.COM', '127.0.0.1:8080', 'localhost:80', 'h:0080', '0x7f.1', '[::1]:3', 'xn--bcher-kva.de', 'a.b.c.d.e'];
  const pieces = ['a', 'Z', '0', '-', '_', '~', '.', '..', '/', '//', '?', '%', '%2e', '%41', '#', '\\', "'", '"', '<', '>', '`', '{', '}', '|', '^', '[', ']', '@', ':', ';', '=', '&', '!', '$', '(', ')', '*', '+', ','];
  let seed = 42;
  const random = (n: number) => {
    seed = (seed * 1103515245 + 12345) % 2147483648;
    return seed % n;
  };
  let accepted = 0;
  const total = 20000;
  for (let i = 0; i < total; i++) {
    const authority = authorities[random(authorities.length)];
    let rest = '/';
    // Mostly plain characters, so that a fair share of targets is accepted and checked.
    for (let n = random(8); n > 0; n--) rest += random(3) === 0 ? pieces[random(pieces.length)] : pieces[random(4)];
    const target = `http://${authority}${rest}`;
    const slash = plainPathStart(target);
    if (slash < 0) continue;
    accepted++;
    assert.equal(slash, 7 + authority.length, target);
    const host = new URL(`http://${authority}/`).host;
    assert.equal(`http://${host}${target.slice(slash)}`, new URL(target).href, target);
  }
  assert.ok(accepted > total / 5, `only ${accepted} of ${total} accepted`);
  for (const plain of ['http://example.com/', 'http://127.0.0.1:8080/1k.bin?entry=42', 'http://h/a/b.c/d?x=1&y=/z:@!$']) {
    assert.ok(plainPathStart(plain) > 0, plain);
  }
  for (const other of ['http://example.com', 'http://example.com?q=/a', 'http://h/a/../b', 'http://h/./a', 'http://h/a/.', 'http://h/%41', "http://h/?q='", 'http://h/a#f', 'http://h\\x/a']) {
    assert.equal(plainPathStart(other), -1, other);
  }
});
