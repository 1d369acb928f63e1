import { parseRules, type RuleSpec } from './spec';

/**
 * Package-manager presets: named rule sets that match by the shape of a URL (and, for npm
 * metadata, of the request), never by host, so mirrors and private registries are covered too.
 *
 * Artifacts whose URL names one version forever are `immutable`: stored for a year even when
 * the origin sends no caching headers (or max-age=0, as many mirrors do). Index and metadata
 * documents are `standard` with ttl 0: stored, revalidated on every use (a 304 when the origin
 * has validators), and served stale when the origin cannot be reached.
 */
export type PresetName = 'npm' | 'pypi' | 'debian' | 'go' | 'maven';
export const PRESET_NAMES: readonly PresetName[] = ['npm', 'pypi', 'debian', 'go', 'maven'];

const IMMUTABLE = { policy: 'immutable', ttl: '365d' } as const;
const REVALIDATED = { policy: 'standard', ttl: 0, serveStaleIfOffline: true } as const;

export const PRESET_DESCRIPTIONS: Record<PresetName, string> = {
  npm: 'npm, pnpm, yarn: tarballs (/-/NAME-VERSION.tgz) immutable; package documents (asked for by npm, or with the abbreviated-document Accept type) revalidated, stale when offline',
  pypi: 'pip, uv: wheels, and sdists under /packages/ or devpi /+f/, immutable; /simple/ and the JSON API revalidated, stale when offline',
  debian: 'apt: .deb/.udeb files and by-hash indexes immutable; InRelease, Release, Packages*, Sources*, Translation-* revalidated, stale when offline',
  go: 'Go module proxy: @v/VERSION.zip, .mod, .info and sumdb tiles immutable; @v/list, @latest and sumdb latest revalidated, stale when offline',
  maven: 'Maven, Gradle: versioned .jar/.pom/.module/... (and their checksums) immutable; maven-metadata.xml and -SNAPSHOT folders revalidated, stale when offline',
};

const SOURCES: Record<PresetName, Record<string, unknown>[]> = {
  npm: [
    { name: 'npm:tarball', match: '*/**/-/*.tgz', method: ['GET', 'HEAD'], ...IMMUTABLE },
    // Package documents are /NAME, /@SCOPE/NAME or /@SCOPE%2fNAME: too common a shape alone, so the
    // request decides: npm (11 asks for full documents, Accept: application/json) by its User-Agent,
    // pnpm, yarn and older npm by the abbreviated-document type they accept.
    { name: 'npm:metadata', match: '*/**', method: ['GET', 'HEAD'], headers: { 'user-agent': 'npm/*' }, ...REVALIDATED },
    { name: 'npm:metadata-abbreviated', match: '*/**', method: ['GET', 'HEAD'], headers: { accept: '*application/vnd.npm.install-v1+json*' }, ...REVALIDATED },
  ],
  pypi: [
    { name: 'pypi:wheel', match: '*/**/*.whl', method: ['GET', 'HEAD'], ...IMMUTABLE },
    { name: 'pypi:sdist', match: '*/**/{packages,+f}/**/*.{tar.gz,zip,tar.bz2,tgz}', method: ['GET', 'HEAD'], ...IMMUTABLE },
    { name: 'pypi:index', match: '*/**/{simple/**,pypi/*/json,pypi/*/*/json}', method: ['GET', 'HEAD'], ...REVALIDATED },
  ],
  debian: [
    { name: 'debian:package', match: '*/**/*.{deb,udeb,ddeb}', method: ['GET', 'HEAD'], ...IMMUTABLE },
    { name: 'debian:by-hash', match: '*/**/by-hash/**', method: ['GET', 'HEAD'], ...IMMUTABLE },
    { name: 'debian:index', match: '*/**/{dists/**,InRelease,Release,Release.gpg,Packages,Packages.*,Sources,Sources.*}', method: ['GET', 'HEAD'], ...REVALIDATED },
  ],
  go: [
    { name: 'go:module', match: '*/**/@v/*.{zip,mod,info}', method: ['GET', 'HEAD'], ...IMMUTABLE },
    { name: 'go:sumdb-tile', match: '*/**/sumdb/*/{tile/**,lookup/**}', method: ['GET', 'HEAD'], ...IMMUTABLE },
    { name: 'go:list', match: '*/**/{@v/list,@latest,sumdb/*/latest}', method: ['GET', 'HEAD'], ...REVALIDATED },
  ],
  maven: [
    { name: 'maven:metadata', match: '*/**/maven-metadata.xml{,.sha1,.md5,.sha256,.sha512}', method: ['GET', 'HEAD'], ...REVALIDATED },
    { name: 'maven:snapshot', match: '*/**/*-SNAPSHOT/**', method: ['GET', 'HEAD'], ...REVALIDATED },
    { name: 'maven:artifact', match: '*/**/*.{jar,pom,aar,war,ear,module,klib}{,.sha1,.md5,.sha256,.sha512,.asc}', method: ['GET', 'HEAD'], ...IMMUTABLE },
  ],
};

/** The validated rules of every preset (a preset that did not validate would be a bug: the tests check). */
export const PRESETS: Record<PresetName, RuleSpec[]> = Object.fromEntries(
  PRESET_NAMES.map((name) => [name, parseRules(SOURCES[name], `presets.${name}`).rules]),
) as Record<PresetName, RuleSpec[]>;

/** For tests: every problem the built-in presets have (none). */
export function presetProblems(): string[] {
  return PRESET_NAMES.flatMap((name) => parseRules(SOURCES[name], `presets.${name}`).problems);
}

/** Validates a `presets` value: a list of names (or one comma-separated string). */
export function parsePresets(input: unknown, where = 'presets'): { presets: PresetName[]; problems: string[] } {
  if (input === undefined || input === null) return { presets: [], problems: [] };
  const list = typeof input === 'string' ? input.split(',').map((s) => s.trim()).filter(Boolean) : input;
  const expected = `expected a list of preset names from ${PRESET_NAMES.join(', ')}, e.g. ["npm", "debian"]`;
  if (!Array.isArray(list)) return { presets: [], problems: [`${where}: ${JSON.stringify(input)} is invalid; ${expected}`] };
  const presets: PresetName[] = [];
  const problems: string[] = [];
  list.forEach((name, i) => {
    if (typeof name !== 'string' || !(PRESET_NAMES as readonly string[]).includes(name.trim().toLowerCase())) {
      problems.push(`${where}[${i}]: ${JSON.stringify(name)} is not a preset; ${expected}`);
    } else if (!presets.includes(name.trim().toLowerCase() as PresetName)) presets.push(name.trim().toLowerCase() as PresetName);
  });
  return { presets, problems };
}
