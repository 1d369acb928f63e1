/**
 * The command line's log output: lines are gathered into batches, so a request costs a string
 * append instead of a write system call. A batch goes out when it reaches BATCH_BYTES or
 * FLUSH_MS after its first line, whichever comes first, and everything is written out before
 * the process exits.
 *
 * Where the lines go decides how a batch is written:
 * - a file or /dev/null (a service manager's log file, `>> proxy.log`): sonic-boom (pino's
 *   writer) in its synchronous mode, one write() per batch from the main thread. Its
 *   asynchronous mode hands each batch to the thread pool, and on this 2-core machine the
 *   hand-off and wake-up cost more than the write (measured: 5 µs per line more at 10,000
 *   lines/s). A write to a file returns once the page cache has it.
 * - a pipe or socket (a service manager's journal, `| tee`, a container runtime) or a
 *   terminal: a non-blocking stream (net.Socket, tty.WriteStream) that the event loop writes
 *   whenever the reader has room. A blocking write there would stop the proxy while the
 *   reader pauses; a thread-pool write would tie up a thread, and process.exit then waits for
 *   it until the reader reads again (measured).
 *
 * Memory is bounded: once more than `maxBufferedBytes` wait for a slow reader, new batches are
 * dropped (the proxy never waits for its log), and when the reader catches up a line says how
 * many lines were dropped.
 *
 * A line costs a string append (its stamp and level are one string, made once a millisecond);
 * a batch is encoded once, into a Buffer, and the sinks are given that Buffer (sonic-boom's
 * string mode measured the batch and encoded it twice more: Buffer.byteLength, the write, and
 * Buffer.from to see what was written).
 */
import { fstatSync } from 'node:fs';
import * as net from 'node:net';
import * as tty from 'node:tty';
import SonicBoom from 'sonic-boom';

export const FLUSH_MS = 4;
const PADDED: Record<string, string> = { trace: 'trace', debug: 'debug', info: 'info ', warn: 'warn ', error: 'error' };
export const BATCH_BYTES = 16 * 1024;
export const DEFAULT_MAX_BUFFERED_BYTES = 4 * 1024 * 1024;

/** Where batches go: `write` refuses (returns false) what would exceed the bound, unless `last`. */
interface Sink {
  write(batch: Buffer, last?: boolean): boolean;
  /** Resolves once everything accepted has been written, or the sink failed. */
  end(): Promise<void>;
  /** The process is exiting without the event loop: write `batch` now if that keeps the order. */
  writeNow(batch: Buffer): void;
}

/** A pipe, socket or terminal, written without blocking. */
class StreamSink implements Sink {
  private readonly stream: net.Socket;
  private failed = false;

  constructor(fd: number, isTty: boolean, private readonly maxBuffered: number) {
    if (isTty) {
      const stream = new tty.WriteStream(fd);
      // Node makes terminal writes blocking; its handle reopened the terminal, so this does not touch the shell's.
      (stream as unknown as { _handle?: { setBlocking?(on: boolean): void } })._handle?.setBlocking?.(false);
      this.stream = stream;
    } else {
      this.stream = new net.Socket({ fd, readable: false, writable: true });
    }
    // The reader went away (EPIPE): nothing more can be delivered.
    this.stream.on('error', () => {
      this.failed = true;
    });
  }

  write(batch: Buffer, last = false): boolean {
    if (this.failed) return true;
    if (!last && this.stream.writableLength + batch.length > this.maxBuffered) return false;
    this.stream.write(batch);
    return true;
  }

  end(): Promise<void> {
    if (this.failed || this.stream.destroyed) return Promise.resolve();
    return new Promise((resolve) => {
      this.stream.once('error', () => resolve());
      this.stream.end(() => resolve());
    });
  }

  writeNow(): void {
    // Cannot be written synchronously behind what the stream still holds.
  }
}

/** A file: one synchronous write per batch. */
class FileSink implements Sink {
  private readonly boom: SonicBoom;
  private failed = false;

  constructor(fd: number) {
    // Buffer mode: the batch is written as it is given (no re-measuring and re-encoding).
    this.boom = new SonicBoom({ fd, sync: true, contentMode: 'buffer' });
    // A full disk or a closed descriptor: the proxy keeps serving, the lines are lost.
    this.boom.on('error', () => {
      this.failed = true;
    });
  }

  write(batch: Buffer): boolean {
    // In buffer mode sonic-boom takes Buffers (its types name only strings).
    if (!this.failed) this.boom.write(batch as unknown as string);
    return true;
  }

  end(): Promise<void> {
    return Promise.resolve();
  }

  writeNow(batch: Buffer): void {
    this.write(batch);
  }
}

export class LogWriter {
  private pending = '';
  private timer: NodeJS.Timeout | null = null;
  private dropped = 0;
  private closed = false;
  /** `HH:MM:SS.mmm level ` of the last line's millisecond and level. */
  private lastMs = 0;
  private lastLevel = '';
  private lastPrefix = '';

  private constructor(private readonly sink: Sink) {}

  /** A writer for a file descriptor the process inherited (1 or 2). */
  static forFd(fd: number, maxBufferedBytes = DEFAULT_MAX_BUFFERED_BYTES): LogWriter {
    let stream = false;
    try {
      const st = fstatSync(fd);
      stream = st.isFIFO() || st.isSocket();
    } catch {
      // not open: sonic-boom reports the error, and the lines are lost
    }
    const isTty = tty.isatty(fd);
    return new LogWriter(stream || isTty ? new StreamSink(fd, isTty, maxBufferedBytes) : new FileSink(fd));
  }

  /** One log line, timestamped: `HH:MM:SS.mmm level message`. */
  log(level: string, message: string): void {
    const now = Date.now();
    if (now !== this.lastMs || level !== this.lastLevel) {
      this.lastMs = now;
      this.lastLevel = level;
      this.lastPrefix = `${new Date(now).toISOString().slice(11, 23)} ${PADDED[level] ?? level.padEnd(5)} `;
    }
    this.write(this.lastPrefix + message + '\n');
  }

  /** Text as it is (it ends with a newline). */
  write(text: string): void {
    if (this.closed) return;
    this.pending += text;
    if (this.pending.length >= BATCH_BYTES) this.flush();
    else this.timer ??= setTimeout(() => this.flush(), FLUSH_MS).unref();
  }

  /** Sends the batch; `last`: the final one, taken whatever the bound (so the last count of dropped lines is never lost). */
  flush(last = false): void {
    if (this.timer !== null) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    if (this.pending === '' && this.dropped === 0) return;
    const lines = this.pending;
    this.pending = '';
    const batch = Buffer.from(this.dropped > 0 ? this.droppedNotice() + lines : lines, 'utf8');
    if (this.sink.write(batch, last)) this.dropped = 0;
    else this.dropped += countLines(lines);
  }

  private droppedNotice(): string {
    return `${new Date().toISOString().slice(11, 23)} warn  caching-proxy: ${this.dropped} log lines dropped: their reader fell behind\n`;
  }

  /**
   * Writes out everything and closes the descriptor. Resolves when done, or after `timeoutMs`
   * if the reader takes nothing meanwhile (the rest is then lost).
   */
  async close(timeoutMs: number): Promise<void> {
    if (this.closed) return;
    this.flush(true);
    this.closed = true;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.sink.end(), new Promise<void>((r) => (timer = setTimeout(r, timeoutMs)))]);
    clearTimeout(timer);
  }

  /** For an exit that cannot wait (process.exit elsewhere): what is still batched, if that keeps the order. */
  flushSync(): void {
    if (this.closed || this.pending === '') return;
    this.sink.writeNow(Buffer.from(this.pending, 'utf8'));
    this.pending = '';
  }
}

function countLines(text: string): number {
  let lines = 0;
  for (let i = text.indexOf('\n'); i >= 0; i = text.indexOf('\n', i + 1)) lines++;
  return lines;
}

/**
 * The writers for stdout and stderr. When both are the same file or pipe (`2>&1`, a service
 * manager's journal), one writer serves both, so warnings stay in order with the other lines.
 */
export function stdioWriters(maxBufferedBytes = DEFAULT_MAX_BUFFERED_BYTES): { out: LogWriter; err: LogWriter } {
  const out = LogWriter.forFd(1, maxBufferedBytes);
  let same = false;
  try {
    const a = fstatSync(1);
    const b = fstatSync(2);
    same = a.dev === b.dev && a.ino === b.ino && a.rdev === b.rdev;
  } catch {
    // one of them is closed
  }
  return { out, err: same ? out : LogWriter.forFd(2, maxBufferedBytes) };
}
