import type { QuickRequest } from './request';

/**
 * The quick lane: the one object the cache (or the pass-through with caching off) hands the
 * server for plain requests read without Node's HTTP objects. `decide` only looks; the other
 * methods do what was decided, and count it.
 */
export interface QuickLane<Stored = unknown> {
  /** What to do with a plain request. No side effects: nothing is counted, marked or touched. */
  decide(request: QuickRequest): QuickDecision<Stored>;
  /** The serialised answer for a decision to answer (the hit is counted here). */
  answer(request: QuickRequest, stored: Stored): QuickAnswer;
  /** A decision to forward is being carried out (the miss is counted here). */
  forwarding(request: QuickRequest): void;
  /** The origin's answer to a forwarded request: status, raw [name, value, ...] fields, and the names in lower case. */
  responded(request: QuickRequest, status: number, rawHeaders: string[], lowerNames: string[]): void;
}

export type QuickDecision<Stored = unknown> =
  /** Answer at once from what is stored (a fresh entry in memory). */
  | { readonly kind: 'answer'; readonly stored: Stored }
  /** Forward it straight to the origin and relay the response, sending these Cache-Status parameters ('' for none). */
  | { readonly kind: 'forward'; readonly cacheStatus: string }
  /** Neither: Node's parser and the RequestHandler take it (and what follows on its connection). */
  | { readonly kind: 'ordinary' };

export const ORDINARY: QuickDecision<never> = { kind: 'ordinary' };

/** A complete response, serialised, that answers a QuickRequest. */
export interface QuickAnswer {
  status: number;
  /** The status line and header fields through the blank line (with Content-Length), and the body when it is small. */
  head: Buffer;
  /** The body, written after `head`, when it is not in `head` already; null when `head` is the whole answer. */
  body: Buffer | null;
  /** Body bytes sent (0 for HEAD), for the log. */
  bodyLength: number;
  /** What the answerer did, for the log (e.g. the Cache-Status parameters). */
  outcome: string;
}

const FORWARD_PLAIN: QuickDecision<never> = { kind: 'forward', cacheStatus: '' };

/** With caching off: every request the quick path reads is forwarded, with no Cache-Status. */
export const FORWARD_EVERYTHING: QuickLane<never> = {
  decide: () => FORWARD_PLAIN,
  answer: () => {
    throw new Error('the pass-through lane has nothing stored');
  },
  forwarding: () => {},
  responded: () => {},
};

/** `lane`, but the requests `declines` names take the ordinary path (traffic shaping). */
export function laneDeclining<Stored>(lane: QuickLane<Stored>, declines: (request: QuickRequest) => boolean): QuickLane<Stored> {
  return {
    decide: (request) => (declines(request) ? ORDINARY : lane.decide(request)),
    answer: (request, stored) => lane.answer(request, stored),
    forwarding: (request) => lane.forwarding(request),
    responded: (request, status, raw, lower) => lane.responded(request, status, raw, lower),
  };
}
