import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as zlib from 'node:zlib';
import type { CacheEntrySummary } from '../../src/cache/types';
import { curlCommand, describeEntry, entryLabel, formatDuration, renderStoredResponse } from '../../src/extension/format';
import type { WireStoredResponse } from '../../src/ipc/protocol';

const summary = (over: Partial<CacheEntrySummary> = {}): CacheEntrySummary => ({
  key: 'k',
  url: 'http://example.test/a/b.json?q=1',
  method: 'GET',
  status: 200,
  size: 12_700,
  storedAt: 0,
  ttl: 245,
  fresh: true,
  hits: 3,
  headers: {},
  ...over,
});

const wire = (body: Buffer, headers: Record<string, string>, over: Partial<WireStoredResponse> = {}): WireStoredResponse => ({
  summary: summary({ size: body.length }),
  statusMessage: 'OK',
  headers,
  bodyBase64: body.toString('base64'),
  bodySize: body.length,
  truncated: false,
  ...over,
});

test('tree descriptions read like "200 · 12.4 KB · fresh 4m · 3 hits"', () => {
  assert.equal(describeEntry(summary()), '200 · 12.4 KB · fresh 4m · 3 hits');
  assert.equal(describeEntry(summary({ fresh: false, ttl: -7200, hits: 1, size: 10, status: 404 })), '404 · 10 B · stale 2h · 1 hit');
  assert.equal(describeEntry(summary({ ttl: 365 * 86_400, rule: 'npm:tarball' })), '200 · 12.4 KB · fresh 365d · 3 hits · rule npm:tarball');
  assert.deepEqual([formatDuration(59), formatDuration(60), formatDuration(86_400 * 3)], ['59s', '1m', '3d']);
  assert.equal(entryLabel(summary()), '/a/b.json?q=1');
  assert.equal(entryLabel(summary({ method: 'HEAD' })), 'HEAD /a/b.json?q=1');
});

test('copy as curl quotes the URL for a shell', () => {
  assert.equal(curlCommand(summary({ url: "http://x.test/it's" }), 'http://127.0.0.1:8899'), `curl -x http://127.0.0.1:8899 'http://x.test/it'\\''s'`);
  assert.equal(curlCommand(summary({ method: 'HEAD' }), 'http://p:1'), `curl -x http://p:1 -I 'http://example.test/a/b.json?q=1'`);
});

test('a stored JSON response renders as status line, headers and pretty JSON', () => {
  const text = renderStoredResponse(wire(Buffer.from('{"a":[1,2]}'), { 'content-type': 'application/json', etag: '"x"' }));
  assert.equal(text, 'GET http://example.test/a/b.json?q=1\nHTTP/1.1 200 OK\ncontent-type: application/json\netag: "x"\n\n{\n  "a": [\n    1,\n    2\n  ]\n}');
});

test('gzip bodies are decoded for reading; binary bodies are summarised', () => {
  const gz = renderStoredResponse(wire(zlib.gzipSync('hello text'), { 'content-type': 'text/plain', 'content-encoding': 'gzip' }));
  assert.match(gz, /\n\n\[decoded from gzip\]\nhello text$/);
  const png = renderStoredResponse(wire(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0, 1]), { 'content-type': 'image/png' }));
  assert.match(png, /\n\n\[binary body: 6 B, image\/png; not shown\]$/);
  const unknown = renderStoredResponse(wire(Buffer.from([1, 2, 0, 3]), {}));
  assert.match(unknown, /\[binary body: 4 B; not shown\]$/);
  const cut = renderStoredResponse(wire(Buffer.from('abc'), { 'content-type': 'text/plain' }, { bodySize: 10_000_000, truncated: true }));
  assert.match(cut, /abc\n\n\[… body cut: showing 3 B of 9\.5 MB\]$/);
});
