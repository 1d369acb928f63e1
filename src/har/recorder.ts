/**
 * A HAR file that grows one entry at a time and is a complete HAR document after every append.
 *
 * The file always ends with the same closing bytes, TAIL. An append writes, with one
 * positioned write at the offset where TAIL starts, the separator, the entry and TAIL again;
 * the offset then moves past the entry. A process killed at any moment (SIGKILL, a crash)
 * leaves either the file before the append or the file after it, both valid JSON: nothing is
 * written after the closing bytes and nothing is ever left open. (A power cut can still lose
 * the pages the kernel had not written yet: appends are not fsync'ed, which would cost a disk
 * flush per request.)
 */
import * as fsp from 'node:fs/promises';
import { CREATOR, type HarEntry } from './har';

const TAIL = Buffer.from('\n]}}\n');
const FILE_MODE = 0o600;

export class HarRecorder {
  private tailOffset: number;
  private queue: Promise<void> = Promise.resolve();
  private failed: Error | null = null;
  private closed = false;
  /** Entries in the file, including any it held when recording resumed into it. */
  entries: number;

  private constructor(
    readonly file: string,
    private readonly handle: fsp.FileHandle,
    tailOffset: number,
    entries: number,
    private readonly onError: (err: Error) => void,
  ) {
    this.tailOffset = tailOffset;
    this.entries = entries;
  }

  /**
   * Opens `file` for recording: a new HAR document, or, if it is a recording of ours (it ends
   * with our closing bytes), continues it. Any other non-empty file is refused unless
   * `overwrite` (the user said so in a save dialog).
   */
  static async open(file: string, options: { overwrite?: boolean; onError?: (err: Error) => void } = {}): Promise<HarRecorder> {
    const onError = options.onError ?? (() => {});
    const handle = await fsp.open(file, fsp.constants.O_RDWR | fsp.constants.O_CREAT, FILE_MODE);
    try {
      const { size } = await handle.stat();
      const resumed = size > 0 && !options.overwrite ? await resumable(handle, size) : null;
      if (resumed) return new HarRecorder(file, handle, resumed.tailOffset, resumed.entries, onError);
      if (size > 0 && !options.overwrite) throw new Error(`${file} already exists and is not a recording of caching-proxy to continue; choose a new file`);
      await handle.truncate(0);
      const head = Buffer.from(`{"log":{"version":"1.2","creator":${JSON.stringify(CREATOR)},"pages":[],"entries":[`);
      await writeAll(handle, Buffer.concat([head, TAIL]), 0);
      return new HarRecorder(file, handle, head.length, 0, onError);
    } catch (err) {
      await handle.close().catch(() => {});
      throw err;
    }
  }

  /** Queues one entry; appends happen one at a time, in call order. */
  append(entry: HarEntry): void {
    if (this.closed || this.failed) return;
    const first = this.entries === 0;
    this.entries++;
    this.queue = this.queue.then(async () => {
      if (this.failed) return;
      const body = Buffer.from(`${first ? '' : ','}\n${JSON.stringify(entry)}`);
      try {
        await writeAll(this.handle, Buffer.concat([body, TAIL]), this.tailOffset);
        this.tailOffset += body.length;
      } catch (err) {
        this.failed = err as Error;
        this.onError(this.failed);
      }
    });
  }

  /** Resolves when every queued entry is in the file. */
  flushed(): Promise<void> {
    return this.queue;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.queue;
    await this.handle.close();
  }
}

async function writeAll(handle: fsp.FileHandle, data: Buffer, position: number): Promise<void> {
  let done = 0;
  while (done < data.length) {
    const { bytesWritten } = await handle.write(data, done, data.length - done, position + done);
    done += bytesWritten;
  }
}

/** Where a recording of ours ends, and how many entries it holds; null if the file is anything else. */
async function resumable(handle: fsp.FileHandle, size: number): Promise<{ tailOffset: number; entries: number } | null> {
  if (size < TAIL.length + 20) return null;
  const end = Buffer.alloc(TAIL.length);
  await handle.read(end, 0, TAIL.length, size - TAIL.length);
  if (!end.equals(TAIL)) return null;
  const text = await handle.readFile({ encoding: 'utf8' }).catch(() => null);
  if (text === null) return null;
  try {
    const doc = JSON.parse(text) as { log?: { entries?: unknown[] } };
    if (!Array.isArray(doc.log?.entries)) return null;
    return { tailOffset: size - TAIL.length, entries: doc.log.entries.length };
  } catch {
    return null;
  }
}
