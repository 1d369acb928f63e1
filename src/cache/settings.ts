import type { IncomingHttpHeaders } from 'node:http';
import type { CacheConfig, CachePolicyName } from '../core/config';
import { RuleSet, settingsFor as layRule } from '../rules/ruleSet';
import { contentTypeMatcher } from './headers';

/**
 * The cache settings that apply to one request: the global ones, with the first matching rule
 * (src/rules/) laid over them. Chosen here and nowhere else.
 */
export type CacheSettings = Pick<CacheConfig, 'ttl' | 'admitAfter' | 'maxObjectSizeMB' | 'excludeContentTypes' | 'serveStaleIfOffline' | 'prefetchLinks'> & {
  /** A rule may also say `immutable`: versioned artifacts (see rules.ts storeDecision). */
  policy: CachePolicyName | 'immutable';
  /** The rule that applied, named in Cache-Status and events; null: the global settings. */
  rule: string | null;
};

/** The request a rule is matched against. */
export interface SettingsRequest {
  method: string;
  headers: IncomingHttpHeaders | Record<string, string>;
}

const PLAIN_GET: SettingsRequest = { method: 'GET', headers: {} };
const globalSettings = new WeakMap<CacheConfig, CacheSettings>();

export function settingsFor(config: CacheConfig, rules: RuleSet, url: URL | string, request: SettingsRequest = PLAIN_GET): CacheSettings {
  let global = globalSettings.get(config);
  if (global === undefined) globalSettings.set(config, (global = { ...config, rule: null }));
  if (rules.empty) return global;
  const rule = rules.match(request.method, typeof url === 'string' ? new URL(url) : url, request.headers);
  return rule ? { ...global, ...layRule(config, rule) } : global;
}

/**
 * The policy the quick lanes must respect for a request: without a rule that sets `offline` or
 * `off`, the global one, at no cost per request.
 */
export function quickPolicy(config: CacheConfig, rules: RuleSet, href: string, headers: SettingsRequest['headers']): CacheSettings['policy'] {
  if (!rules.setsServingPolicy) return config.policy;
  return settingsFor(config, rules, href, { method: 'GET', headers }).policy;
}

const matchers = new WeakMap<string[], (contentType: string | undefined) => boolean>();

/** Whether settings exclude a content type from the cache (the matcher built once per list). */
export function excludesType(settings: CacheSettings, contentType: string | undefined): boolean {
  let matcher = matchers.get(settings.excludeContentTypes);
  if (matcher === undefined) matchers.set(settings.excludeContentTypes, (matcher = contentTypeMatcher(settings.excludeContentTypes)));
  return matcher(contentType);
}
