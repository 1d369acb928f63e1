import type { Exchange, RequestHandler } from '../core/exchange';
import { laneDeclining, type QuickLane } from '../core/quick/lane';
import type { CompiledRule, RuleSet } from './ruleSet';

/**
 * Traffic shaping for testing an app against a bad network: a matching rule's `delay` holds
 * every answer (cache hits too: to the app the proxy is the network), its `fail` answers a share
 * of requests with an error status instead of forwarding them.
 */

/** The Cache-Status parameter naming the rule that applied (an RFC 8941 string, so any name fits). */
export function ruleParam(name: string): string {
  return `rule="${name}"`;
}

function shapingRule(rules: RuleSet, method: string, url: URL, headers: Exchange['req']['headers']): CompiledRule | null {
  if (!rules.shapes) return null;
  const rule = rules.match(method, url, headers);
  return rule && (rule.spec.delay || rule.spec.fail) ? rule : null;
}

/** The handler the server calls: shaping first, then the cache (or pass-through). Without shaping rules, `next` itself. */
export function shapingHandler(rules: RuleSet, next: RequestHandler, random: () => number = Math.random): RequestHandler {
  if (!rules.shapes) return next;
  return (ex) => {
    const rule = shapingRule(rules, ex.method, ex.url, ex.req.headers);
    return rule ? shape(ex, rule, next, random) : next(ex);
  };
}

async function shape(ex: Exchange, rule: CompiledRule, next: RequestHandler, random: () => number): Promise<void> {
  const { delay, fail } = rule.spec;
  if (delay) {
    const ms = delay.min + (delay.max - delay.min) * random();
    if (ms > 0) await waitUnlessGone(ex, ms);
    if (ex.res.destroyed) return;
  }
  if (fail && random() < fail.rate) {
    const outcome = `detail=simulated-failure; ${ruleParam(rule.name)}`;
    ex.cacheOutcome = outcome;
    const body = `caching-proxy: simulated ${fail.status} from rule "${rule.name}" (${Math.round(fail.rate * 1000) / 10}% of matching requests fail)\n`;
    ex.res.writeHead(fail.status, {
      'Content-Type': 'text/plain; charset=utf-8',
      'Content-Length': Buffer.byteLength(body),
      'Cache-Status': `caching-proxy; ${outcome}`,
    });
    ex.res.end(ex.method === 'HEAD' ? undefined : body);
    return;
  }
  return next(ex);
}

function waitUnlessGone(ex: Exchange, ms: number): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      ex.res.off('close', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    ex.res.once('close', done);
  });
}

/** The server's quick lane steps aside for requests a rule shapes: those take the ordinary path, through shapingHandler. */
export function shapingQuickLane(rules: RuleSet, lane: QuickLane | null): QuickLane | null {
  if (!rules.shapes || lane === null) return lane;
  return laneDeclining(lane, (r) => shapingRule(rules, r.method, new URL(r.href), r.headers) !== null);
}
