import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseSimpleRequest, plainPathStart, type SimpleRequestHead } from '../../src/core/quick/request';

/**
 * The quick path's reader of a request head (parseSimpleRequest) takes only the plainest heads
 * and declines everything else to Node's parser; plainPathStart says which targets need no
 * `new URL`. Both were regular expressions until session 9 and are byte scans now: pinned here by
 * a table of heads at the edges (what is simple, with its fields, and what declines), and by the
 * regular-expression readers they replaced, kept below as references, over many heads and
 * targets made by changing single bytes of plain ones.
 */

const MAX = 16384;

function parse(head: string, max = MAX): SimpleRequestHead | null {
  return parseSimpleRequest(Buffer.from(head, 'latin1'), max);
}

const line = 'GET http://h.test/a HTTP/1.1\r\n';

test('parseSimpleRequest: the simple heads, with their fields', () => {
  const simple: [string, SimpleRequestHead][] = [
    ['GET http://h.test/a HTTP/1.1\r\nHost: h.test\r\n\r\n', { method: 'GET', target: 'http://h.test/a', pathStart: 13, headers: { host: 'h.test' } }],
    ['HEAD http://127.0.0.1:8080/1k.bin?x=1 HTTP/1.1\r\nhost: 127.0.0.1:8080\r\n\r\n', { method: 'HEAD', target: 'http://127.0.0.1:8080/1k.bin?x=1', pathStart: 21, headers: { host: '127.0.0.1:8080' } }],
    // Any visible ASCII in the target: plainPathStart and `new URL` judge it later.
    ['GET http://h/%zz#f\\"<>{} HTTP/1.1\r\nHost: h\r\n\r\n', { method: 'GET', target: 'http://h/%zz#f\\"<>{}', pathStart: -1, headers: { host: 'h' } }],
    // Names lower-cased, known and unknown, in the order sent.
    [
      line + 'HOST: h\r\nUser-Agent: u\r\nX-Some-Thing: 1\r\naccept: */*\r\nACCEPT-ENCODING: gzip\r\nVia: 1.1 p\r\n\r\n',
      { method: 'GET', target: 'http://h.test/a', pathStart: 13, headers: { host: 'h', 'user-agent': 'u', 'x-some-thing': '1', accept: '*/*', 'accept-encoding': 'gzip', via: '1.1 p' } },
    ],
    // A name of every tchar; a known name's length with another name's letters.
    [line + "Host: h\r\n!#$%&'*+-.^_`|~09AZaz: t\r\nHOSS: s\r\nX-Host: x\r\n\r\n", { method: 'GET', target: 'http://h.test/a', pathStart: 13, headers: { host: 'h', "!#$%&'*+-.^_`|~09azaz": 't', hoss: 's', 'x-host': 'x' } }],
    // SP and HTAB around a value go, inside it they stay; an empty value; obs-text kept as latin1.
    [
      line + 'Host:h\r\nA: \t a \t b \t \r\nB:\r\nC:  \t \r\nD: caf\xe9 \x80\xff\r\n\r\n',
      { method: 'GET', target: 'http://h.test/a', pathStart: 13, headers: { host: 'h', a: 'a \t b', b: '', c: '', d: 'caf\xe9 \x80\xff' } },
    ],
    // Connection and Proxy-Connection: keep-alive in any case.
    [line + 'Host: h\r\nConnection: Keep-Alive\r\nProxy-Connection: keep-alive\r\n\r\n', { method: 'GET', target: 'http://h.test/a', pathStart: 13, headers: { host: 'h', connection: 'Keep-Alive', 'proxy-connection': 'keep-alive' } }],
    // Fields the decision looks at are read, not judged, here.
    [
      line + 'Host: h\r\nCache-Control: no-cache\r\nRange: bytes=0-1\r\nAuthorization: x\r\nProxy-Authorization: Basic eA==\r\n\r\n',
      { method: 'GET', target: 'http://h.test/a', pathStart: 13, headers: { host: 'h', 'cache-control': 'no-cache', range: 'bytes=0-1', authorization: 'x', 'proxy-authorization': 'Basic eA==' } },
    ],
  ];
  for (const [head, expected] of simple) {
    const got = parse(head);
    assert.deepEqual(got, expected, JSON.stringify(head));
    assert.deepEqual(Object.keys(got!.headers), Object.keys(expected.headers), JSON.stringify(head));
    assert.deepEqual(parseReference(Buffer.from(head, 'latin1'), MAX), expected, `reference: ${JSON.stringify(head)}`);
  }
});

test('parseSimpleRequest: what is not plainly simple declines', () => {
  const host = 'Host: h\r\n';
  const declined: [string, string][] = [
    ['another method', 'POST http://h/ HTTP/1.1\r\n' + host + '\r\n'],
    ['lower-case method', 'get http://h/ HTTP/1.1\r\n' + host + '\r\n'],
    ['origin-form target', 'GET /a HTTP/1.1\r\n' + host + '\r\n'],
    ['https target', 'GET https://h/ HTTP/1.1\r\n' + host + '\r\n'],
    ['upper-case scheme', 'GET HTTP://h/ HTTP/1.1\r\n' + host + '\r\n'],
    ['nothing after the scheme', 'GET http:// HTTP/1.1\r\n' + host + '\r\n'],
    ['HTTP/1.0', 'GET http://h/ HTTP/1.0\r\n' + host + '\r\n'],
    ['lower-case version', 'GET http://h/ http/1.1\r\n' + host + '\r\n'],
    ['two spaces after the method', 'GET  http://h/ HTTP/1.1\r\n' + host + '\r\n'],
    ['a space after the version', 'GET http://h/ HTTP/1.1 \r\n' + host + '\r\n'],
    ['a tab in the target', 'GET http://h/\ta HTTP/1.1\r\n' + host + '\r\n'],
    ['obs-text in the target', 'GET http://h/\xe9 HTTP/1.1\r\n' + host + '\r\n'],
    ['DEL in the target', 'GET http://h/\x7f HTTP/1.1\r\n' + host + '\r\n'],
    ['no Host', line + 'Accept: */*\r\n\r\n'],
    ['no field at all', line + '\r\n'],
    ['Host twice', line + host + 'host: h\r\n\r\n'],
    ['another field twice', line + host + 'Accept: a\r\nACCEPT: b\r\n\r\n'],
    ['Content-Length', line + host + 'Content-Length: 0\r\n\r\n'],
    ['Transfer-Encoding', line + host + 'Transfer-Encoding: chunked\r\n\r\n'],
    ['Upgrade', line + host + 'Upgrade: websocket\r\n\r\n'],
    ['Expect', line + host + 'Expect: 100-continue\r\n\r\n'],
    ['TE', line + host + 'TE: trailers\r\n\r\n'],
    ['Trailer', line + host + 'Trailer: x\r\n\r\n'],
    ['Connection: close', line + host + 'Connection: close\r\n\r\n'],
    ['Connection with another option', line + host + 'Connection: keep-alive, x\r\n\r\n'],
    ['Proxy-Connection: close', line + host + 'Proxy-Connection: close\r\n\r\n'],
    // The reader's object has a prototype: a name that is one of its properties declines.
    ['a field named constructor', line + host + 'Constructor: x\r\n\r\n'],
    ['a field named __proto__', line + host + '__proto__: x\r\n\r\n'],
    ['obs-fold', line + host + 'X: a\r\n b\r\n\r\n'],
    ['obs-fold by a tab', line + host + 'X: a\r\n\tb\r\n\r\n'],
    ['a space before the colon', line + 'Host : h\r\n\r\n'],
    ['no colon', line + host + 'X\r\n\r\n'],
    ['an empty name', line + host + ': x\r\n\r\n'],
    ['a separator in the name', line + host + 'X(y): z\r\n\r\n'],
    ['obs-text in the name', line + host + 'X\xe9: z\r\n\r\n'],
    ['a bare LF ending a field', line + 'Host: h\nX: y\r\n\r\n'],
    ['a bare LF ending the request line', 'GET http://h/ HTTP/1.1\n' + host + '\r\n'],
    ['a bare CR in a value', line + host + 'X: a\rb\r\n\r\n'],
    ['CR CR LF', line + host + 'X: a\r\r\n\r\n'],
    ['NUL in a value', line + host + 'X: a\x00b\r\n\r\n'],
    ['a control in a value', line + host + 'X: a\x01b\r\n\r\n'],
    ['ESC in a value', line + host + 'X: \x1b[0m\r\n\r\n'],
    ['DEL in a value', line + host + 'X: a\x7fb\r\n\r\n'],
    ['a vertical tab in a value', line + host + 'X: a\x0bb\r\n\r\n'],
    ['a bare LF at the end of a value', line + host + 'X: a\n\r\n'],
    ['an empty line before the end', line + host + '\r\nX: y\r\n\r\n'],
    ['an empty line after the request line', line + '\r\n' + host + '\r\n'],
    ['an extra empty line at the end', line + host + '\r\n\r\n'],
    ['a CR before the blank line', line + 'Host: h\r\r\n\r\n'],
    ['an LF after the blank line', line + host + '\r\n\n'],
    ['incomplete', line + host],
    ['incomplete, one CRLF short', line + host + '\r'],
    ['a body behind it', line + host + '\r\nx'],
    ['a pipelined request behind it', line + host + '\r\n' + line + host + '\r\n'],
    ['a leading CRLF', '\r\n' + line + host + '\r\n'],
    ['a leading space', ' ' + line + host + '\r\n'],
  ];
  for (const [why, head] of declined) {
    assert.equal(parse(head), null, `${why}: ${JSON.stringify(head)}`);
    assert.equal(parseReference(Buffer.from(head, 'latin1'), MAX), null, `reference, ${why}`);
  }
  // The limits: at least 20 bytes, at most the configured head size.
  const head = 'GET http://h/ HTTP/1.1\r\nHost: h\r\n\r\n';
  assert.notEqual(parse(head, head.length), null);
  assert.equal(parse(head, head.length - 1), null);
  assert.equal(parse(head.slice(0, 16) + '\r\n\r\n'), null);
  assert.equal(parseSimpleRequest(Buffer.alloc(0), MAX), null);
});

/** A deterministic generator (the same heads on every run). */
function generator(seed: number): (n: number) => number {
  return (n) => {
    seed = (seed * 1103515245 + 12345) % 2147483648;
    return Math.floor((seed / 2147483648) * n);
  };
}

test('parseSimpleRequest reads as the regular-expression reader did, over heads changed byte by byte', () => {
  const bases = [
    'GET http://127.0.0.1:8080/1k.bin HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n',
    'HEAD http://h/a?b=c HTTP/1.1\r\nhost: h\r\nConnection: keep-alive\r\nUser-Agent: x/1 (y)\r\n\r\n',
    'GET http://example.com/p HTTP/1.1\r\nHost: example.com\r\nAccept: text/html, */*;q=0.1\r\nAccept-Encoding: gzip\r\nX-Empty:\r\nVia: 1.1 other\r\n\r\n',
  ];
  // Bytes that matter to the grammar, and a few that do not.
  const bytes = [0x0d, 0x0a, 0x20, 0x09, 0x00, 0x01, 0x0b, 0x0c, 0x1f, 0x7f, 0x80, 0xe9, 0xff, 0x3a, 0x2c, 0x28, 0x22, 0x41, 0x61, 0x2d, 0x2f, 0x48, 0x68];
  const random = generator(16);
  const pieces = ['\r\n', '\r\n\r\n', ' ', 'Host: h\r\n', 'Content-Length: 0\r\n', 'connection: close\r\n', 'X: y\r\n'];
  let accepted = 0;
  const total = 30000;
  for (let i = 0; i < total; i++) {
    let head = Buffer.from(bases[random(bases.length)], 'latin1');
    for (let edits = 1 + random(2); edits > 0; edits--) {
      const at = random(head.length + 1);
      const kind = random(5);
      if (kind === 0) head = Buffer.concat([head.subarray(0, at), Buffer.from([bytes[random(bytes.length)]]), head.subarray(at)]);
      else if (kind === 1 && at < head.length) head[at] = bytes[random(bytes.length)];
      else if (kind === 2 && at < head.length) head = Buffer.concat([head.subarray(0, at), head.subarray(at + 1)]);
      else if (kind === 3) head = Buffer.concat([head.subarray(0, at), Buffer.from(pieces[random(pieces.length)], 'latin1'), head.subarray(at)]);
      else if (at < head.length && head[at] >= 0x61 && head[at] <= 0x7a) head[at] -= 0x20;
    }
    const max = random(10) === 0 ? head.length - 1 + random(3) : MAX;
    const got = parseSimpleRequest(head, max);
    const expected = parseReference(head, max);
    assert.deepEqual(got, expected, JSON.stringify(head.toString('latin1')));
    if (got !== null) {
      accepted++;
      assert.deepEqual(Object.keys(got.headers), Object.keys(expected!.headers));
    }
  }
  assert.ok(accepted > total / 10 && accepted < total - total / 10, `${accepted} of ${total} accepted`);
});

const pathStartOf = (target: string): number => plainPathStart(Buffer.from(target, 'latin1'));

test('plainPathStart answers as the regular expressions did', () => {
  const random = generator(7);
  const pieces = ['a', 'Z', '0', '-', '.', '..', '/', '/.', '/..', '?', '#', '%', '\\', "'", ' ', '\t', '\xe9', '\x85', '@', ':', '~', '!', '$', '(', '*', '=', '[', ']'];
  const starts = ['http://', 'http://h', 'http://h/', 'http://h:80/', 'http://[::1]/', 'HTTP://h/', 'https://h/', 'http:/', ''];
  let accepted = 0;
  const total = 30000;
  for (let i = 0; i < total; i++) {
    let target = starts[random(starts.length)];
    for (let n = random(7); n > 0; n--) target += random(3) === 0 ? pieces[random(pieces.length)] : pieces[random(3)];
    const slash = pathStartOf(target);
    assert.equal(slash, plainPathStartReference(target), JSON.stringify(target));
    if (slash >= 0) accepted++;
  }
  assert.ok(accepted > total / 10, `only ${accepted} of ${total} accepted`);
  const edges: [string, number][] = [
    ['http://h/', 8],
    ['http://h/a/.b/..c/...', 8],
    ['http://h/a?.', 8],
    ['http://h/a?/.', -1],
    ['http://h/a?x=/../y', -1],
    ['http://h/.', -1],
    ['http://h/..?', -1],
    ['http://h', -1],
    ['http:///a', -1],
    ['http://h?/a', -1],
    ['http://h#/a', -1],
    ['http://h\\/a', -1],
    ['http://h /a', 9],
    ['http://h/a b', -1],
  ];
  for (const [target, slash] of edges) assert.equal(pathStartOf(target), slash, target);
});

// ---- The readers these replaced (session 8), kept as references. ----

const REQUEST_LINE = /^(GET|HEAD) (http:\/\/[!-~]+) HTTP\/1\.1$/;
const FIELD_LINE = /^([!#$%&'*+\-.^_`|~0-9A-Za-z]+):[ \t]*(.*?)[ \t]*$/;
const STRAY_CONTROL = /[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]|\r(?!\n)|(?<!\r)\n/;
const CRLF_CRLF = Buffer.from('\r\n\r\n');
const FRAMING = new Set(['content-length', 'transfer-encoding', 'upgrade', 'expect', 'te', 'trailer']);

function parseReference(chunk: Buffer, maxHeadBytes: number): SimpleRequestHead | null {
  const length = chunk.length;
  if (length < 20 || length > maxHeadBytes) return null;
  if (chunk.indexOf(CRLF_CRLF) !== length - 4) return null;
  const text = chunk.toString('latin1', 0, length - 4);
  if (STRAY_CONTROL.test(text)) return null;
  const lines = text.split('\r\n');
  const requestLine = REQUEST_LINE.exec(lines[0]);
  if (requestLine === null) return null;
  const headers: Record<string, string> = {};
  for (let i = 1; i < lines.length; i++) {
    const field = FIELD_LINE.exec(lines[i]);
    if (field === null) return null;
    const name = field[1].toLowerCase();
    if (headers[name] !== undefined || FRAMING.has(name)) return null;
    const value = field[2];
    if ((name === 'connection' || name === 'proxy-connection') && value.toLowerCase() !== 'keep-alive') return null;
    headers[name] = value;
  }
  if (headers.host === undefined) return null;
  return { method: requestLine[1] as 'GET' | 'HEAD', target: requestLine[2], pathStart: plainPathStartReference(requestLine[2]), headers };
}

const PLAIN_TARGET = /^http:\/\/[^/?#\\]+\/[A-Za-z0-9\-._~!$&()*+,;=:@/]*(?:\?[A-Za-z0-9\-._~!$&()*+,;=:@/?]*)?$/;
const DOT_SEGMENT = /\/\.{1,2}(?:[/?]|$)/;

function plainPathStartReference(target: string): number {
  if (!PLAIN_TARGET.test(target)) return -1;
  const slash = target.indexOf('/', 7);
  return DOT_SEGMENT.test(target.slice(slash)) ? -1 : slash;
}
