import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import test from 'node:test';
import { ConfigError, defaultConfig, resolveConfig } from '../../src/core/config';
import { parsePresets, presetProblems, PRESET_NAMES } from '../../src/rules/presets';
import { expandAlternatives, pathGlobToRegExp, RuleSet, settingsFor } from '../../src/rules/ruleSet';
import { parseDuration, parseRules } from '../../src/rules/spec';
import { runCli } from '../helpers/processes';

/** The name of the rule that decides `url` (GET, no headers unless given), or null. */
function decide(set: RuleSet, url: string, method = 'GET', headers: Record<string, string> = {}): string | null {
  return set.match(method, new URL(url), headers)?.name ?? null;
}

function problemsOf(rules: unknown): string[] {
  return parseRules(rules).problems;
}

test('durations: seconds, s/m/h/d units, compounds', () => {
  assert.equal(parseDuration(90), 90);
  assert.equal(parseDuration('90'), 90);
  assert.equal(parseDuration('30s'), 30);
  assert.equal(parseDuration('10m'), 600);
  assert.equal(parseDuration('12h'), 43_200);
  assert.equal(parseDuration('365d'), 365 * 86_400);
  assert.equal(parseDuration('1h30m'), 5400);
  assert.equal(parseDuration('1h 30m'), 5400);
  assert.equal(parseDuration('1.5h'), 5400);
  assert.equal(parseDuration('500ms'), 0.5);
  for (const bad of ['', '5x', 'h', '-5', '10 minutes', '1d2', true, null, -1]) {
    assert.equal(typeof parseDuration(bad), 'object', `${JSON.stringify(bad)} must be refused`);
  }
});

test('path globs: * stays within a segment, ** crosses them (and may be empty)', () => {
  const re = pathGlobToRegExp('/pool/**/*.deb');
  assert.ok(re.test('/pool/main/h/hello/hello_2.10_amd64.deb'));
  assert.ok(re.test('/pool/hello.deb'));
  assert.ok(!re.test('/pool/hello.deb.asc'));
  assert.ok(!re.test('/other/pool/hello.deb'));
  assert.ok(!re.test('/poolx/hello.deb'));
  const single = pathGlobToRegExp('/a/*.tgz');
  assert.ok(single.test('/a/x.tgz'));
  assert.ok(!single.test('/a/b/x.tgz'), '* must not cross a /');
  const tail = pathGlobToRegExp('/simple/**');
  assert.ok(tail.test('/simple') && tail.test('/simple/') && tail.test('/simple/pkg/'));
  assert.ok(!tail.test('/simplex'));
  assert.ok(pathGlobToRegExp('/a.b+c(d)').test('/a.b+c(d)'), 'regex characters are literal');
  assert.ok(!pathGlobToRegExp('/a.b').test('/axb'));
  assert.deepEqual(expandAlternatives('/x.{deb,udeb}{,.sig}'), ['/x.deb', '/x.deb.sig', '/x.udeb', '/x.udeb.sig']);
});

test('host patterns, ports, schemes, methods, headers; first match wins', () => {
  const { rules, problems } = parseRules([
    { name: 'debs', match: '*.example.org/pool/**/*.deb', policy: 'always', ttl: '365d' },
    { name: 'api-post', match: 'api.example.org/**', method: 'POST', fail: { status: 503, rate: 0.1 } },
    { name: 'local-4873', match: 'registry.local:4873', ttl: '1h' },
    { name: 'tls-only', match: 'https://secure.example.org/**', policy: 'private' },
    { name: 'json', match: '*/data/**', headers: { Accept: '*json*' }, ttl: 5 },
    { name: 'catch-all-example', match: '*.example.org', ttl: '10m' },
  ]);
  assert.deepEqual(problems, []);
  const set = RuleSet.of(rules);
  assert.equal(decide(set, 'http://deb.example.org/pool/main/h/hello_1_amd64.deb'), 'debs');
  assert.equal(decide(set, 'http://a.b.example.org/pool/x.deb'), 'debs', '* in a host spans dots');
  assert.equal(decide(set, 'http://example.org/pool/x.deb'), null, '*.example.org is subdomains only');
  assert.equal(decide(set, 'http://DEB.Example.ORG/pool/x.deb'), 'debs', 'hosts compare case-insensitively');
  assert.equal(decide(set, 'http://deb.example.org/pool/x.deb?download=1'), 'debs', 'the query is not part of the path');
  assert.equal(decide(set, 'http://deb.example.org/pool/x.txt'), 'catch-all-example', 'the next rule that matches decides');
  assert.equal(decide(set, 'http://api.example.org/v1/orders', 'POST'), 'api-post');
  assert.equal(decide(set, 'http://api.example.org/v1/orders', 'GET'), 'catch-all-example', 'method restricts the rule');
  assert.equal(decide(set, 'http://registry.local:4873/lodash'), 'local-4873');
  assert.equal(decide(set, 'http://registry.local/lodash'), null, 'a port in the pattern must match');
  assert.equal(decide(set, 'https://secure.example.org/x'), 'tls-only');
  assert.equal(decide(set, 'http://secure.example.org/x'), 'catch-all-example', 'a scheme in the pattern must match');
  assert.equal(decide(set, 'http://other.test/data/1', 'GET', { accept: 'application/JSON' }), 'json', 'header patterns are case-insensitive');
  assert.equal(decide(set, 'http://other.test/data/1', 'GET', { accept: 'text/html' }), null);
  assert.equal(decide(set, 'http://other.test/data/1'), null, 'a header pattern needs the header');
});

test('rules are validated precisely: which rule, which field, what is wrong', () => {
  const problems = problemsOf([
    { match: 'ok.example/**', ttl: '5x' },
    { name: 'named', match: 'x.example/**', policy: 'forever' },
    { ttl: '1h' },
    { match: 'ftp://x.example/**' },
    { match: 'x.example/**', delay: '500-100' },
    { match: 'x.example/**', fail: { status: 200, rate: 0.5 } },
    { match: 'x.example/**', fail: { status: 503, rate: '150%' } },
    { match: 'x.example/**', methods: ['GET'] },
    { match: 'x.example/**', admitAfter: 0, maxObjectSizeMB: -1, serveStaleIfOffline: 'yes' },
    'not a rule',
    { match: 'x.example/a?b' },
    { match: 'x.example/{a,b' },
    { name: 'named', match: 'y.example' },
    { match: 'x.example', delay: 700_000 },
  ]);
  const expect = [
    /^rules\[0\]\.ttl: "5x" is invalid; expected a duration/,
    /^rules\[1\] \("named"\)\.policy: "forever" is invalid; expected one of standard, private, always, offline, off, immutable$/,
    /^rules\[2\]\.match: missing/,
    /^rules\[3\]\.match: "ftp:\/\/x\.example\/\*\*" names the scheme "ftp"/,
    /^rules\[4\]\.delay: "500-100" is invalid; the range goes from 500 down to 100/,
    /^rules\[5\]\.fail: .* the status must be a whole number from 400 to 599/,
    /^rules\[6\]\.fail: .* the rate must be from 0 to 1/,
    /^rules\[7\]\.methods: unknown field \(did you mean "method"\?\)/,
    /^rules\[8\]\.admitAfter: 0 is invalid/,
    /^rules\[8\]\.maxObjectSizeMB: -1 is invalid/,
    /^rules\[8\]\.serveStaleIfOffline: "yes" is invalid; expected true or false/,
    /^rules\[9\]: expected an object/,
    /^rules\[10\]\.match: .* must not contain spaces, "\?" or "#"/,
    /^rules\[11\]\.match: .* unbalanced/,
    /^rules\[12\] \("named"\)\.name: "named" is already the name of rules\[1\]/,
    /^rules\[13\]\.delay: 700000 is invalid/,
  ];
  assert.equal(problems.length, expect.length, problems.join('\n'));
  expect.forEach((re, i) => assert.match(problems[i], re));
  assert.match(problemsOf({ match: 'x' })[0], /^rules: expected a list of rules/);
});

test('delay and fail accept their short forms', () => {
  const { rules, problems } = parseRules([
    { match: 'a.example', delay: 200 },
    { match: 'b.example', delay: '100-500' },
    { match: 'c.example', delay: [10, 20] },
    { match: 'd.example', delay: { min: 1, max: 2 }, fail: 503 },
    { match: 'e.example', fail: { status: 502, rate: '10%' } },
  ]);
  assert.deepEqual(problems, []);
  assert.deepEqual(rules.map((r) => r.delay), [{ min: 200, max: 200 }, { min: 100, max: 500 }, { min: 10, max: 20 }, { min: 1, max: 2 }, undefined]);
  assert.deepEqual(rules[3].fail, { status: 503, rate: 1 });
  assert.deepEqual(rules[4].fail, { status: 502, rate: 0.1 });
  assert.equal(rules[0].name, 'rules[0]', 'an unnamed rule is called by its place');
});

test('a resolved config resolves again to itself (it crosses the IPC channel and is re-validated)', () => {
  const input = {
    rules: [{ name: 'r', match: '*.example.org/pool/**/*.deb', method: 'get', policy: 'immutable', ttl: '30d', delay: '1-2', fail: { status: 503, rate: '5%' }, headers: { 'User-Agent': 'apt*' } }],
    presets: 'npm, debian',
  };
  const once = resolveConfig(input);
  assert.deepEqual(once.presets, ['npm', 'debian']);
  assert.equal(once.rules[0].ttl, 30 * 86_400);
  assert.deepEqual(once.rules[0].method, ['GET']);
  const twice = resolveConfig(JSON.parse(JSON.stringify(once)));
  assert.deepEqual(twice.rules, once.rules);
  assert.deepEqual(twice.presets, once.presets);
});

test('invalid rules or presets make the config invalid with every problem listed', () => {
  assert.throws(
    () => resolveConfig({ rules: [{ match: 'x', ttl: 'soon' }], presets: ['npm', 'cargo'], port: -1 }),
    (err: unknown) => {
      assert.ok(err instanceof ConfigError);
      assert.ok(err.problems.some((p) => p.startsWith('port: ')));
      assert.ok(err.problems.some((p) => p.startsWith('rules[0].ttl: "soon" is invalid')));
      assert.ok(err.problems.some((p) => p === 'presets[1]: "cargo" is not a preset; expected a list of preset names from npm, pypi, debian, go, maven, e.g. ["npm", "debian"]'));
      return true;
    },
  );
  assert.deepEqual(parsePresets(['NPM', 'npm']).presets, ['npm'], 'names are case-insensitive and not repeated');
});

test('every preset validates, and each matches its ecosystem by URL shape on any host', () => {
  assert.deepEqual(presetProblems(), []);
  const set = RuleSet.of([], [...PRESET_NAMES]);
  const npmAccept = { accept: 'application/vnd.npm.install-v1+json; q=1.0, application/json; q=0.8, */*' };
  const cases: [string, string | null, Record<string, string>?][] = [
    ['https://registry.npmjs.org/lodash/-/lodash-4.17.21.tgz', 'npm:tarball'],
    ['http://verdaccio.corp:4873/@babel/core/-/core-7.24.0.tgz', 'npm:tarball'],
    ['https://registry.npmjs.org/lodash', 'npm:metadata-abbreviated', npmAccept],
    ['https://registry.npmjs.org/@babel%2fcore', 'npm:metadata-abbreviated', npmAccept],
    ['https://registry.npmjs.org/lodash', 'npm:metadata', { accept: 'application/json', 'user-agent': 'npm/11.19.1 node/v20.20.2 linux x64 workspaces/false' }],
    ['https://files.pythonhosted.org/packages/aa/bb/cc/requests-2.31.0-py3-none-any.whl', 'pypi:wheel'],
    ['https://files.pythonhosted.org/packages/aa/bb/requests-2.31.0.tar.gz', 'pypi:sdist'],
    ['http://devpi.local/root/pypi/+f/abc/def/six-1.16.0.tar.gz', 'pypi:sdist'],
    ['https://pypi.org/simple/requests/', 'pypi:index'],
    ['https://pypi.org/pypi/requests/json', 'pypi:index'],
    ['http://deb.debian.org/debian/pool/main/h/hello/hello_2.10-3_amd64.deb', 'debian:package'],
    ['http://mirror.example/debian/dists/bookworm/main/binary-amd64/by-hash/SHA256/abc123', 'debian:by-hash'],
    ['http://deb.debian.org/debian/dists/bookworm/InRelease', 'debian:index'],
    ['http://deb.debian.org/debian/dists/bookworm/main/binary-amd64/Packages.xz', 'debian:index'],
    ['http://flat.example/repo/Packages.gz', 'debian:index'],
    ['https://proxy.golang.org/github.com/pkg/errors/@v/v0.9.1.zip', 'go:module'],
    ['https://proxy.golang.org/github.com/pkg/errors/@v/v0.9.1.mod', 'go:module'],
    ['https://proxy.golang.org/github.com/pkg/errors/@v/list', 'go:list'],
    ['https://proxy.golang.org/github.com/pkg/errors/@latest', 'go:list'],
    ['https://sum.golang.org/sumdb/sum.golang.org/tile/8/0/x089/123', 'go:sumdb-tile'],
    ['https://repo1.maven.org/maven2/org/slf4j/slf4j-api/2.0.9/slf4j-api-2.0.9.jar', 'maven:artifact'],
    ['https://repo1.maven.org/maven2/org/slf4j/slf4j-api/2.0.9/slf4j-api-2.0.9.pom.sha1', 'maven:artifact'],
    ['https://repo1.maven.org/maven2/org/slf4j/slf4j-api/maven-metadata.xml', 'maven:metadata'],
    ['https://nexus.corp/repository/snapshots/com/acme/app/1.0-SNAPSHOT/app-1.0-20240101.jar', 'maven:snapshot'],
    // Not package-manager traffic: no preset applies.
    ['https://registry.npmjs.org/lodash', null],
    ['https://example.com/index.html', null],
    ['https://github.com/acme/app/archive/refs/heads/main.zip', null],
    ['https://example.com/downloads/tool-latest.tar.gz', null],
  ];
  for (const [url, expected, headers] of cases) assert.equal(decide(set, url, 'GET', headers), expected, url);
  assert.equal(decide(set, 'https://registry.npmjs.org/lodash/-/lodash-4.17.21.tgz', 'PUT'), null, 'presets are for GET and HEAD only');
});

test('user rules come before presets; settings are laid over the global ones', () => {
  const { rules } = parseRules([{ name: 'no-debs', match: 'deb.example/**', policy: 'off' }]);
  const set = RuleSet.of(rules, ['debian']);
  assert.equal(decide(set, 'http://deb.example/pool/a.deb'), 'no-debs');
  assert.equal(decide(set, 'http://other.example/pool/a.deb'), 'debian:package');
  const config = defaultConfig().cache;
  const immutable = settingsFor(config, set.match('GET', new URL('http://other.example/pool/a.deb'), {}));
  assert.deepEqual(immutable, { policy: 'immutable', ttl: 365 * 86_400, admitAfter: 1, maxObjectSizeMB: 256, serveStaleIfOffline: true, rule: 'debian:package' });
  assert.deepEqual(settingsFor(config, null), { policy: 'standard', ttl: config.ttl, admitAfter: 1, maxObjectSizeMB: 256, serveStaleIfOffline: true, rule: null });
  // A proxy switched to offline (or off) stays so whatever a rule says.
  for (const global of ['offline', 'off'] as const) {
    const s = settingsFor({ ...config, policy: global }, set.match('GET', new URL('http://other.example/pool/a.deb'), {}));
    assert.equal(s.policy, global);
    assert.equal(s.rule, 'debian:package');
  }
});

test('the command line: rules from --config, --presets; invalid ones exit 2 naming rule and field', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cp-rules-cli-'));
  try {
    const file = path.join(dir, 'config.json');
    fs.writeFileSync(file, JSON.stringify({ rules: [{ name: 'debs', match: '*.example.org/pool/**/*.deb', ttl: '1 year' }] }));
    const bad = await runCli(['--config', file]);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /^caching-proxy: rules\[0\] \("debs"\)\.ttl: "1 year" is invalid; expected a duration/m);
    const badPreset = await runCli(['--presets', 'npm,cargo']);
    assert.equal(badPreset.code, 2);
    assert.match(badPreset.stderr, /presets\[1\]: "cargo" is not a preset/);
    const help = await runCli(['--help']);
    assert.match(help.stdout, /--presets LIST/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
