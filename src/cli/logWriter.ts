/**
 * The command line's log output: lines are gathered into batches and written asynchronously, so
 * a request costs a string append instead of a write system call. A batch goes out when it
 * reaches BATCH_BYTES or FLUSH_MS after its first line, whichever comes first, and everything
 * is written out before the process exits.
 *
 * Where the lines go decides how they are written:
 * - a pipe or socket (a service manager, `| tee`, a container runtime): a non-blocking
 *   net.Socket, written by the event loop whenever the reader has room;
 * - a file, a terminal, /dev/null: sonic-boom (pino's writer), in the thread pool.
 * sonic-boom on a pipe would block a thread-pool thread while the reader stalls, and
 * process.exit then waits for that write until the reader reads again; on a non-blocking pipe
 * it retries only every 100 ms.
 *
 * Memory is bounded: once more than `maxBufferedBytes` are waiting for a slow reader, new
 * batches are dropped (the proxy never waits for its log). When the reader catches up, a line
 * says how many lines were dropped.
 */
import { fstatSync, writeSync } from 'node:fs';
import * as net from 'node:net';
import SonicBoom from 'sonic-boom';

export const FLUSH_MS = 4;
export const BATCH_BYTES = 16 * 1024;
export const DEFAULT_MAX_BUFFERED_BYTES = 4 * 1024 * 1024;

/** Where batches go: `write` refuses (returns false) what would exceed the bound. */
interface Sink {
  write(batch: string): boolean;
  /** Resolves once everything accepted has been written, or the sink failed. */
  end(): Promise<void>;
}

class SocketSink implements Sink {
  private readonly socket: net.Socket;
  private failed = false;

  constructor(fd: number, private readonly maxBuffered: number) {
    this.socket = new net.Socket({ fd, readable: false, writable: true });
    // The reader went away (EPIPE): nothing more can be delivered.
    this.socket.on('error', () => {
      this.failed = true;
    });
  }

  write(batch: string): boolean {
    if (this.failed) return true;
    if (this.socket.writableLength + batch.length > this.maxBuffered) return false;
    this.socket.write(batch);
    return true;
  }

  end(): Promise<void> {
    if (this.failed || this.socket.destroyed) return Promise.resolve();
    return new Promise((resolve) => {
      this.socket.once('error', () => resolve());
      this.socket.end(() => resolve());
    });
  }
}

class BoomSink implements Sink {
  private readonly boom: SonicBoom;
  private refused = false;
  private failed = false;
  /** Bytes accepted and bytes written so far: equal when nothing waits. */
  private accepted = 0;
  private written = 0;

  constructor(private readonly fd: number, maxBuffered: number) {
    this.boom = new SonicBoom({ fd, sync: false, maxLength: maxBuffered });
    this.boom.on('drop', () => {
      this.refused = true;
    });
    // A full disk or a closed descriptor: the proxy keeps serving, the lines are lost.
    this.boom.on('error', () => {
      this.failed = true;
    });
    this.boom.on('write', (n: number) => {
      this.written += n;
    });
  }

  write(batch: string): boolean {
    if (this.failed) return true;
    this.refused = false;
    this.boom.write(batch);
    if (this.refused) return false;
    this.accepted += Buffer.byteLength(batch);
    return true;
  }

  end(): Promise<void> {
    if (this.failed) return Promise.resolve();
    return new Promise((resolve) => {
      this.boom.once('close', () => resolve());
      this.boom.once('error', () => resolve());
      this.boom.end();
    });
  }

  /** The process is exiting without the event loop: write `batch` now, if nothing is ahead of it. */
  writeNow(batch: string): void {
    if (this.failed || this.accepted !== this.written) return;
    try {
      writeSync(this.fd, batch);
    } catch {
      // exiting regardless
    }
  }
}

export class LogWriter {
  private pending = '';
  private timer: NodeJS.Timeout | null = null;
  private dropped = 0;
  private closed = false;
  private lastMs = 0;
  private lastStamp = '';

  private constructor(private readonly sink: Sink) {}

  /** A writer for a file descriptor the process inherited (1 or 2). */
  static forFd(fd: number, maxBufferedBytes = DEFAULT_MAX_BUFFERED_BYTES): LogWriter {
    let pipe = false;
    try {
      const st = fstatSync(fd);
      pipe = st.isFIFO() || st.isSocket();
    } catch {
      // not open: sonic-boom reports the error, and the lines are lost
    }
    return new LogWriter(pipe ? new SocketSink(fd, maxBufferedBytes) : new BoomSink(fd, maxBufferedBytes));
  }

  /** One log line, timestamped: `HH:MM:SS.mmm level message`. */
  log(level: string, message: string): void {
    const now = Date.now();
    if (now !== this.lastMs) {
      this.lastMs = now;
      this.lastStamp = new Date(now).toISOString().slice(11, 23);
    }
    this.write(`${this.lastStamp} ${level.padEnd(5)} ${message}\n`);
  }

  /** Text as it is (it ends with a newline). */
  write(text: string): void {
    if (this.closed) return;
    this.pending += text;
    if (this.pending.length >= BATCH_BYTES) this.flush();
    else this.timer ??= setTimeout(() => this.flush(), FLUSH_MS).unref();
  }

  flush(): void {
    if (this.timer !== null) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    if (this.pending === '' && this.dropped === 0) return;
    const lines = this.pending;
    this.pending = '';
    const batch = this.dropped > 0 ? this.droppedNotice() + lines : lines;
    if (this.sink.write(batch)) this.dropped = 0;
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
    this.flush();
    this.closed = true;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.sink.end(), new Promise<void>((r) => (timer = setTimeout(r, timeoutMs)))]);
    clearTimeout(timer);
  }

  /** For an exit that cannot wait (process.exit elsewhere): what is still batched, if it keeps the order. */
  flushSync(): void {
    if (this.closed || this.pending === '' || !(this.sink instanceof BoomSink)) return;
    this.sink.writeNow(this.pending);
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
