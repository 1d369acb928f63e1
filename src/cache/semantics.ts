import CachePolicy from 'http-cache-semantics';

/**
 * The one place that knows http-cache-semantics' serialised form (`toObject()`: `u`, `h`,
 * `reqh`, `rescc`) and the undeclared `matches` of revalidatedPolicy. Those are internals, so
 * the library's version is pinned exactly in package.json; a new version is checked here.
 */
export type Policy = CachePolicy;
export type StoredPolicy = CachePolicy.CachePolicyObject;
export type PolicyRequest = CachePolicy.Request;
export type PolicyResponse = CachePolicy.Response;

export function restorePolicy(stored: StoredPolicy): Policy {
  return CachePolicy.fromObject(stored);
}

export function storePolicy(policy: Policy): StoredPolicy {
  return policy.toObject();
}

/** What the cache needs of a policy beyond its public questions. */
export interface PolicyView {
  /** The URL the policy was made for. */
  url: string;
  mustRevalidate: boolean;
  /**
   * RFC 9111 §4.2.4: never served stale, not even with the origin unreachable: no-cache,
   * must-revalidate, and for a shared cache proxy-revalidate and s-maxage (§5.2.2.10).
   */
  neverStale: boolean;
  /**
   * The policy requests are evaluated against. http-cache-semantics 4.3 revalidates every
   * must-revalidate response even while fresh; RFC 9111 §5.2.2.2 only forbids serving it
   * stale. So freshness is judged without the directive, and staleness is checked separately.
   */
  evalPolicy: Policy;
}

export function viewPolicy(policy: Policy): PolicyView {
  const obj = policy.toObject();
  const cc = obj.rescc;
  const mustRevalidate = cc['must-revalidate'] !== undefined;
  const neverStale = mustRevalidate || cc['no-cache'] !== undefined || (obj.sh && (cc['proxy-revalidate'] !== undefined || cc['s-maxage'] !== undefined));
  if (!mustRevalidate) return { url: obj.u ?? '', mustRevalidate, neverStale, evalPolicy: policy };
  const rescc = { ...cc };
  delete rescc['must-revalidate'];
  return { url: obj.u ?? '', mustRevalidate, neverStale, evalPolicy: CachePolicy.fromObject({ ...obj, rescc }) };
}

/** The request headers a stored policy was built from (host + Vary-named), without directives or credentials. */
export function storedRequestHeaders(stored: StoredPolicy): Record<string, string> {
  const out: Record<string, string> = {};
  if (stored.reqh) for (const k in stored.reqh) if (k !== 'cache-control' && k !== 'pragma' && k !== 'authorization') out[k] = String(stored.reqh[k]);
  if (stored.h) out.host = stored.h;
  return out;
}

/** The policy after a 304 (RFC 9111 §4.3.4), or null if the 304 does not select the stored response. */
export function notModifiedPolicy(policy: Policy, request: PolicyRequest, notModified: PolicyResponse): Policy | null {
  const result = policy.revalidatedPolicy(request, notModified) as CachePolicy.RevalidationPolicy & { matches?: boolean };
  return result.modified || result.matches === false ? null : result.policy;
}

/** stale-if-error (RFC 5861) as http-cache-semantics judges it: the same policy back means "use the stored one". */
export function stillUsableOnError(policy: Policy, request: PolicyRequest, response?: PolicyResponse): boolean {
  try {
    const result = policy.revalidatedPolicy(request, response);
    return result.policy === policy && !result.modified;
  } catch {
    return false;
  }
}

/** Epoch ms until which a response is fresh. */
export function freshUntil(policy: Policy): number {
  return Date.now() + (policy.maxAge() - policy.age()) * 1000;
}

export function newPolicy(request: PolicyRequest, response: PolicyResponse, options: CachePolicy.Options): Policy {
  return new CachePolicy(request, response, options);
}
