/** A small seeded PRNG (mulberry32): the same seed gives the same mutations on every machine. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Valid requests the mutations start from. `host` is the target authority, `n` a unique id. */
export function seeds(host: string, n: number): string[] {
  return [
    `GET http://${host}/fuzz/${n}?q=1 HTTP/1.1\r\nHost: ${host}\r\nUser-Agent: fuzz\r\nAccept: */*\r\nX-Fuzz-Id: ${n}\r\n\r\n`,
    `POST http://${host}/fuzz/${n} HTTP/1.1\r\nHost: ${host}\r\nContent-Type: text/plain\r\nContent-Length: 11\r\nX-Fuzz-Id: ${n}\r\n\r\nhello world`,
    `POST http://${host}/fuzz/${n} HTTP/1.1\r\nHost: ${host}\r\nTransfer-Encoding: chunked\r\nX-Fuzz-Id: ${n}\r\n\r\n5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\n\r\n`,
    `GET http://${host}/fuzz/${n}/a HTTP/1.1\r\nHost: ${host}\r\nX-Fuzz-Id: ${n}\r\n\r\nGET http://${host}/fuzz/${n}/b HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`,
    `GET /${host}/fuzz/${n} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/html\r\nX-Fuzz-Id: ${n}\r\n\r\n`,
    `GET http://${host}/fuzz/${n} HTTP/1.0\r\nX-Fuzz-Id: ${n}\r\n\r\n`,
    `GET http://${host}/fuzz/${n} HTTP/1.1\r\nHost: ${host}\r\nCookie: a=1\r\nCookie: b=2\r\nAuthorization: Bearer t${n}\r\nConnection: keep-alive, X-Drop\r\nX-Drop: 1\r\nVia: 1.1 other\r\n\r\n`,
    `PUT http://${host}/fuzz/${n} HTTP/1.1\r\nHost: ${host}\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\nbody`,
    `HEAD http://${host}/fuzz/${n} HTTP/1.1\r\nHost: ${host}\r\nX-Fuzz-Id: ${n}\r\n\r\n`,
  ];
}

const BYTES = ['\r\n', '\n', '\r', ' ', '  ', '\t', '\0', ':', ',', ';', '=', '"', '\x7f', '\x80', '\xff', '\x01', '0', '9', 'f', '-', '+', '\r\n ', '\r\n\r\n', 'Ã©'];
const LINES = [
  'Transfer-Encoding: chunked',
  'Transfer-Encoding: gzip, chunked',
  'Transfer-Encoding: chunked, identity',
  'Transfer-Encoding:\tchunked',
  'Transfer-Encoding : chunked',
  'Transfer-Encoding: chunked\r\nTransfer-Encoding: x',
  'Transfer-Encoding: \x0bchunked',
  'Content-Length: 0',
  'Content-Length: 5',
  'Content-Length: 11',
  'Content-Length: 4',
  'Content-Length: -1',
  'Content-Length: 1e3',
  'Content-Length: 11, 11',
  'Content-Length: 99999999999999999999999',
  ' folded',
  '\tfolded',
  'Host: other.test',
  'Host:',
  'Connection: close',
  'Connection: Content-Length',
  'Connection: Transfer-Encoding',
  'Connection: Host',
  'Connection: Upgrade\r\nUpgrade: websocket',
  'Expect: 100-continue',
  'X-Nul: a\0b',
  'Authorization: Basic eDp5',
  'Authorization: Bearer other',
  'User-Agent: second',
  'Proxy-Authorization: Basic eDp5',
  'Max-Forwards: 0',
  'X: ' + 'a'.repeat(300),
  'Content-Type: text/plain',
];

type Rand = () => number;
const pick = <T>(r: Rand, xs: readonly T[]): T => xs[Math.floor(r() * xs.length)];
const int = (r: Rand, n: number) => Math.floor(r() * n);

function headLines(s: string): { head: string[]; rest: string } {
  const end = s.indexOf('\r\n\r\n');
  if (end < 0) return { head: s.split('\r\n'), rest: '' };
  return { head: s.slice(0, end).split('\r\n'), rest: s.slice(end + 4) };
}
const join = (head: string[], rest: string) => head.join('\r\n') + '\r\n\r\n' + rest;

const MUTATORS: Array<(r: Rand, s: string) => string> = [
  // replace one byte
  (r, s) => {
    const i = int(r, s.length);
    const b = r() < 0.5 ? pick(r, BYTES) : String.fromCharCode(int(r, 256));
    return s.slice(0, i) + b + s.slice(i + 1);
  },
  // insert bytes
  (r, s) => {
    const i = int(r, s.length + 1);
    return s.slice(0, i) + pick(r, BYTES) + s.slice(i);
  },
  // delete a short range
  (r, s) => {
    const i = int(r, s.length);
    return s.slice(0, i) + s.slice(i + 1 + int(r, 8));
  },
  // insert a nasty field line
  (r, s) => {
    const { head, rest } = headLines(s);
    head.splice(1 + int(r, head.length), 0, pick(r, LINES));
    return join(head, rest);
  },
  // duplicate or drop a field line
  (r, s) => {
    const { head, rest } = headLines(s);
    if (head.length < 2) return s;
    const i = 1 + int(r, head.length - 1);
    if (r() < 0.5) head.splice(i, 0, head[i]);
    else head.splice(i, 1);
    return join(head, rest);
  },
  // change a number
  (r, s) => {
    const runs = [...s.matchAll(/[0-9]+/g)];
    if (!runs.length) return s;
    const m = pick(r, runs);
    const replacement = pick(r, ['0', '1', '2', '10', '12', '-1', '00011', '4294967296', '18446744073709551617', 'ffff', String(Number(m[0]) + 1), String(Math.max(0, Number(m[0]) - 1))]);
    return s.slice(0, m.index) + replacement + s.slice(m.index! + m[0].length);
  },
  // flip the case of a letter
  (r, s) => {
    if (!s) return s;
    const i = int(r, s.length);
    const c = s[i];
    const f = c === c.toLowerCase() ? c.toUpperCase() : c.toLowerCase();
    return s.slice(0, i) + f + s.slice(i + 1);
  },
  // truncate
  (r, s) => s.slice(0, int(r, s.length)),
  // append garbage or a second request
  (r, s) => s + (r() < 0.5 ? pick(r, ['GET http://x.test/smuggled HTTP/1.1\r\nHost: x.test\r\n\r\n', '0\r\n\r\n', 'xyz', '\r\n', 'G']) : String.fromCharCode(int(r, 256)).repeat(1 + int(r, 4))),
  // whitespace games in the request line
  (r, s) => {
    const sp = s.indexOf(' ');
    if (sp < 0) return s;
    return s.slice(0, sp) + pick(r, ['\t', '  ', '\x0b', '\x0c', '\r', '']) + s.slice(sp + 1);
  },
  // swap two field lines
  (r, s) => {
    const { head, rest } = headLines(s);
    if (head.length < 3) return s;
    const i = 1 + int(r, head.length - 1);
    const j = 1 + int(r, head.length - 1);
    [head[i], head[j]] = [head[j], head[i]];
    return join(head, rest);
  },
];

/** The n-th mutation of the run: a seed request with 1 to 3 mutations applied. */
export function mutation(seed: number, n: number, host: string): Buffer {
  const r = prng((seed ^ Math.imul(n + 1, 0x9e3779b1)) >>> 0);
  let s = pick(r, seeds(host, n));
  const count = 1 + int(r, 3);
  for (let i = 0; i < count; i++) s = pick(r, MUTATORS)(r, s);
  return Buffer.from(s, 'latin1');
}
