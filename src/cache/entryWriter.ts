import { responseHasNoBody } from '../core/forward';
import type { IndexRecord } from './entryMeta';
import { hashKey } from './store/keyIndex';
import { ownedBody } from './store/records';
import type { StoreWriter } from './store/writer';
import type { Entry } from './entry';
import { rawHeader } from './headers';
import { freshUntil, type Policy } from './semantics';
import type { Store } from './store';

/** A response on its way into the store. */
export interface StoreSpec {
  key: string;
  href: string;
  policy: Policy;
  status: number;
  statusMessage: string;
  /** The response fields as a hit will send them (see prepareStoredHeaders). */
  stored: string[];
  requestHeaders: Record<string, string>;
  vary: string[] | null;
  contentType?: string;
}

export type WriteOutcome = Entry | 'too-large' | 'disk-error' | 'no-capacity' | 'closed';

/**
 * Stores one response body as it streams in: into a temp file (and memory, while small enough
 * for the memory tier). Nothing is visible until end() publishes the entry; abort() or a body
 * over the object limit leaves nothing behind.
 */
export class EntryWriter {
  private file: StoreWriter | null;
  private chunks: Buffer[] | null;
  private size = 0;
  private tooLarge = false;
  private drainWaiters: Array<() => void> = [];

  constructor(
    private readonly store: Store,
    private readonly spec: StoreSpec,
    private readonly maxObject: number,
  ) {
    this.file = store.newBodyFile();
    this.chunks = store.memoryShare > 0 ? [] : null;
  }

  /** Body bytes seen so far. */
  get bytes(): number {
    return this.size;
  }

  /** False when the file is behind: wait for onDrain before writing more. */
  write(chunk: Buffer): boolean {
    this.size += chunk.length;
    if (this.tooLarge) return true;
    if (this.size > this.maxObject) {
      // Over the object limit: the response goes on to the client, nothing is stored.
      this.giveUp();
      return true;
    }
    if (this.chunks) {
      if (this.size <= this.store.memoryShare) this.chunks.push(chunk);
      else this.chunks = null;
    }
    const flowing = this.file === null || this.file.write(chunk);
    // Too big for memory and no disk: nothing can hold it.
    if (!this.file && !this.chunks) this.tooLarge = true;
    return flowing;
  }

  onDrain(fn: () => void): void {
    this.drainWaiters.push(fn);
    if (this.drainWaiters.length === 1) this.file?.onDrain(() => this.releaseWaiters());
  }

  /** The body will not arrive complete: remove what was written. */
  abort(): void {
    this.file?.abort();
    this.file = null;
    this.chunks = null;
  }

  /** The body arrived complete: publish it as an entry (or say why it cannot be kept). */
  async end(): Promise<WriteOutcome> {
    if (this.tooLarge) {
      this.abort();
      return 'too-large';
    }
    const s = this.spec;
    const size = this.size;
    const body = this.chunks ? ownedBody(this.chunks, size) : null;
    // A chunked origin response is answered from the cache with its now known length.
    if (rawHeader(s.stored, 'content-length') === undefined && !responseHasNoBody('GET', s.status)) s.stored.push('Content-Length', String(size));
    const record: IndexRecord = {
      key: s.key,
      hash: hashKey(s.key),
      url: s.href,
      status: s.status,
      size,
      digest: '',
      storedAt: Date.now(),
      freshUntil: freshUntil(s.policy),
      hits: 0,
      contentType: s.contentType,
      vary: s.vary,
    };
    return this.store.insertNew({ record, statusMessage: s.statusMessage, raw: s.stored, policy: s.policy, requestHeaders: s.requestHeaders, body, file: this.file });
  }

  private giveUp(): void {
    this.tooLarge = true;
    this.abort();
    this.releaseWaiters();
  }

  private releaseWaiters(): void {
    const waiting = this.drainWaiters;
    this.drainWaiters = [];
    for (const fn of waiting) fn();
  }
}
