import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { newBodyDigest } from '../digest';

/** Bodies up to this size are kept inline in their entry's pack record; larger ones get a file of their own. */
export const INLINE_MAX = 64 * 1024;
const FILE_MODE = 0o600;

const TEMP_PREFIX = `${process.pid.toString(36)}-${randomBytes(4).toString('hex')}`;
let tempCounter = 0;
export function tempName(suffix: string): string {
  return `${TEMP_PREFIX}-${(tempCounter++).toString(36)}${suffix}`;
}

/**
 * Takes one body as it arrives, computing its digest. Up to INLINE_MAX it is held in memory
 * (it will be part of a pack record: no temp file is made for it); past that it goes to a temp
 * file that commit renames into place. Nothing is visible until commit.
 */
export class StoreWriter {
  private chunks: Buffer[] | null = [];
  private stream: fs.WriteStream | null = null;
  private closed: Promise<void> | null = null;
  private readonly digest = newBodyDigest();
  private drainWaiters: Array<() => void> = [];
  tmpPath: string | null = null;
  size = 0;
  error: NodeJS.ErrnoException | null = null;

  constructor(private readonly tmpDir: string) {}

  /** False when the file is behind: wait for onDrain before writing more. */
  write(chunk: Buffer): boolean {
    this.digest.update(chunk);
    this.size += chunk.length;
    if (this.error) return true;
    if (this.chunks) {
      this.chunks.push(chunk);
      if (this.size <= INLINE_MAX) return true;
      this.spill();
      return true;
    }
    return this.stream!.write(chunk);
  }

  private spill(): void {
    const chunks = this.chunks!;
    this.chunks = null;
    this.tmpPath = path.join(this.tmpDir, tempName('.tmp'));
    const stream = fs.createWriteStream(this.tmpPath, { mode: FILE_MODE, flags: 'wx', highWaterMark: 1024 * 1024 });
    this.stream = stream;
    this.closed = new Promise((resolve) => stream.once('close', () => resolve()));
    stream.on('error', (err: NodeJS.ErrnoException) => {
      this.error ??= err;
      this.releaseWaiters();
    });
    stream.on('drain', () => this.releaseWaiters());
    for (const c of chunks) stream.write(c);
  }

  private releaseWaiters(): void {
    const waiting = this.drainWaiters;
    this.drainWaiters = [];
    for (const fn of waiting) fn();
  }

  onDrain(fn: () => void): void {
    if (this.error || !this.stream) fn();
    else this.drainWaiters.push(fn);
  }

  abort(): void {
    this.chunks = null;
    if (!this.stream) return;
    this.stream.destroy();
    const tmp = this.tmpPath!;
    void this.closed!.then(() => fsp.unlink(tmp).catch(() => {}));
  }

  /** Ends the body: resolves with its digest and, when it is small, the body itself (else it is in tmpPath). */
  async finish(): Promise<{ digest: string; body: Buffer | null }> {
    if (this.chunks) return { digest: this.digest.finish(), body: Buffer.concat(this.chunks, this.size) };
    this.stream!.end();
    await this.closed;
    if (this.error) {
      await fsp.unlink(this.tmpPath!).catch(() => {});
      throw this.error;
    }
    return { digest: this.digest.finish(), body: null };
  }
}
