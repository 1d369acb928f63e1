import { reusedAnswer, serialisedAnswer } from '../core/quick/answer';
import { decideQuick, type QuickView } from '../core/quick/decision';
import type { QuickLane } from '../core/quick/lane';
import type { QuickRequest } from '../core/quick/request';
import { responseHasNoBody } from '../core/forward';
import { hitStatus } from './cacheStatus';
import { ageAt, type Entry } from './entry';
import type { HitForMiss } from './hitForMiss';
import type { CacheReport } from './report';
import { plainKey } from './rules';
import type { CacheSettings } from './settings';
import type { Store } from './store';

type PolicyFor = (href: string, headers: Record<string, string>) => CacheSettings['policy'];

/**
 * The cache's quick lane (see core/quick/): fresh in-memory hits answered serialised, and plain
 * requests for URLs whose responses are not stored (hit-for-miss) forwarded by the server.
 */
export function cacheQuickLane(store: Store, report: CacheReport, marks: HitForMiss, policyFor: PolicyFor): QuickLane<Entry> {
  const view: QuickView<Entry> = {
    mode(request) {
      const policy = policyFor(request.href, request.headers);
      return policy === 'offline' ? 'ordinary' : policy === 'off' ? 'forward-only' : 'serve';
    },
    fresh(request) {
      const entry = store.freshInMemory(request.href, request.headers);
      return entry === null || responseHasNoBody('GET', entry.status) ? null : entry;
    },
    unstored(request) {
      const cacheStatus = marks.quickForward(request.href);
      // Stored variants of the URL (Vary): the ordinary path chooses among them.
      return cacheStatus === null || store.hasUrl(request.href) ? null : cacheStatus;
    },
  };
  return {
    decide: (request) => decideQuick(request, view),
    answer(request: QuickRequest, entry: Entry) {
      report.hit(entry);
      const meta = entry.meta!;
      const now = Date.now();
      const headOnly = request.method === 'HEAD';
      return (
        reusedAnswer(meta, now, headOnly, entry.status, entry.body!) ??
        serialisedAnswer(meta, { status: entry.status, fields: meta, body: entry.body! }, headOnly, now, ageAt(meta, now), hitStatus(Math.round((entry.freshUntil - now) / 1000), meta.rule))
      );
    },
    forwarding(request) {
      marks.used(request.href);
      report.miss(request.href, plainKey(request.href));
    },
    responded: (request, status, rawHeaders, lowerNames) => marks.responded(request.href, status, rawHeaders, lowerNames, report),
  };
}
