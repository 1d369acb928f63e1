import { readRequests, type StreamReading } from './strictHttp';
import { meaning } from './strictHttp';
import { rawExchange, type RawExchange, type Recorder } from './wire';

/** What the strict reader makes of some client bytes, and what the proxy therefore owes. */
export interface Plan {
  reading: StreamReading;
  methods: string[];
  /** Final responses owed: one per complete request, plus one for a malformed tail. */
  wanted: number;
}

export function plan(bytes: Buffer): Plan {
  const reading = readRequests(bytes);
  const methods = reading.requests.map((r) => r.method);
  const owesTail = reading.tail.kind === 'invalid' || reading.tail.kind === 'unsupported';
  // The malformed request's method still decides whether its answer has a body (HEAD).
  const tailMethod = /^[\r\n]*([A-Z]+) /.exec(bytes.subarray(reading.consumed, reading.consumed + 40).toString('latin1'));
  if (reading.tail.kind !== 'end') methods.push(tailMethod ? tailMethod[1] : 'GET');
  return { reading, methods, wanted: reading.requests.length + (owesTail ? 1 : 0) };
}

/** Checks the proxy's answers against the plan; returns what is wrong, or null. */
export function judgeAnswers(p: Plan, x: RawExchange): string | null {
  if (x.garbage) return 'the proxy answered with bytes that are not an HTTP response';
  const n = p.reading.requests.length;
  for (let i = 0; i < Math.min(n, x.responses.length); i++) {
    const status = x.responses[i].status;
    const method = p.methods[i];
    const allowed5xx = status === 508 || (method === 'CONNECT' && status === 502);
    if (status >= 500 && !allowed5xx) return `a well-formed ${method} request got ${status}: ${x.responses[i].body.toString('latin1').slice(0, 200)}`;
  }
  const tail = p.reading.tail;
  if (tail.kind === 'invalid' || tail.kind === 'unsupported') {
    const r = x.responses[n];
    if (r) {
      const ok = (r.status >= 400 && r.status < 500) || (tail.kind === 'unsupported' && r.status === 501);
      if (!ok) return `malformed request (${tail.reason}) got ${r.status} instead of a 4xx or a closed connection`;
    } else if (!x.closed && x.timedOut && x.responses.length >= n) {
      return `malformed request (${tail.reason}) got no answer and the connection stayed open`;
    }
  }
  if (x.timedOut && x.responses.length < n) {
    return `only ${x.responses.length} of ${n} well-formed requests were answered, and the connection stayed open`;
  }
  return null;
}

/**
 * The multiset of request meanings the origin may receive: one per well-formed request sent.
 * Whatever the origin records must be taken from it, else the proxy forwarded something no
 * strict reading of the client's bytes contains: smuggling, a changed body, a changed field.
 */
export class Ledger {
  private readonly expected = new Map<string, number>();
  private checked = 0;
  readonly problems: string[] = [];

  expect(p: Plan): void {
    for (const r of p.reading.requests) {
      if (r.method === 'CONNECT') continue;
      const m = meaning(r, { forwarded: false });
      if (m) this.expected.set(m, (this.expected.get(m) ?? 0) + 1);
    }
  }

  /** Takes every request the recorder saw since the last call. */
  settle(recorder: Recorder): void {
    for (; this.checked < recorder.received.length; this.checked++) {
      const got = recorder.received[this.checked];
      if (got.request.method === 'CONNECT') continue;
      if (!got.meaning) {
        this.problems.push(`origin received a request without our Via or with an unusable target: ${JSON.stringify(got.request).slice(0, 400)}`);
        continue;
      }
      if (this.take(got.meaning)) continue;
      const parsed = JSON.parse(got.meaning) as unknown[];
      parsed[1] = '*';
      if (this.take(JSON.stringify(parsed))) continue;
      this.problems.push(`origin received a request that no strict reading of the client's bytes contains: ${got.meaning.slice(0, 600)}`);
    }
    for (const m of recorder.malformed) this.problems.push(`the proxy sent the origin bytes a strict parser rejects: ${m}`);
    recorder.malformed.length = 0;
  }

  private take(m: string): boolean {
    const left = this.expected.get(m) ?? 0;
    if (left === 0) return false;
    if (left === 1) this.expected.delete(m);
    else this.expected.set(m, left - 1);
    return true;
  }
}

/** Sends one client byte stream and judges it. */
export async function probe(port: number, bytes: Buffer, ledger: Ledger, timeoutMs = 3000): Promise<{ plan: Plan; exchange: RawExchange; problem: string | null }> {
  const p = plan(bytes);
  ledger.expect(p);
  const exchange = await rawExchange(port, bytes, p.methods, p.wanted, timeoutMs);
  return { plan: p, exchange, problem: judgeAnswers(p, exchange) };
}
