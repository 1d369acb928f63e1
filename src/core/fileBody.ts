import type { FileHandle } from 'node:fs/promises';
import type { ServerResponse } from 'node:http';
import { countBytes } from './forward';

/** Read size: a quarter of the thread-pool round trips and callbacks of the default 64 KiB. */
export const SLAB_BYTES = 1024 * 1024;
/** Slabs kept between bodies: two bodies streaming at once find theirs without allocating. */
const SLABS_KEPT = 4;
const freeSlabs: Buffer[] = [];

function takeSlab(): Buffer {
  return freeSlabs.pop() ?? Buffer.allocUnsafeSlow(SLAB_BYTES);
}

function keepSlab(slab: Buffer): void {
  if (freeSlabs.length < SLABS_KEPT) freeSlabs.push(slab);
}

/**
 * Sends bytes [start, end] of an open file as a response's body, through two 1 MiB slabs that
 * are reused from body to body: one is being sent while the next is read. A fs ReadStream
 * allocated a new 1 MiB buffer per read, memory outside V8's heap that only a collection gives
 * back. A slab is read into again only once the response has handed its previous bytes to the
 * kernel (the write's callback), which is also the backpressure: at most two slabs in flight.
 * Anything holding on to written chunks must copy them (the HAR tap does). Resolves once the
 * response is closed, delivered or not; closes the handle.
 */
export function streamFileRange(res: ServerResponse, handle: FileHandle, start: number, end: number): Promise<void> {
  return new Promise<void>((resolve) => {
    const slabs = [takeSlab(), takeSlab()];
    const inFlight: (Promise<boolean> | null)[] = [null, null];
    let closed = false;
    let clean = false;
    let wakeOnClose: (() => void) | null = null;
    const whenClosed = new Promise<boolean>((r) => (wakeOnClose = () => r(false)));
    res.once('close', () => {
      closed = true;
      wakeOnClose!();
      void handle.close().catch(() => {});
      // After a broken response a slab may still be named by a write the kernel never took.
      if (clean) for (const slab of slabs) keepSlab(slab);
      resolve();
    });
    /** Resolves true once the chunk is written, false if the response closed first. */
    const send = (chunk: Buffer): Promise<boolean> => Promise.race([new Promise<boolean>((r) => res.write(chunk, (err) => r(!err))), whenClosed]);
    void (async () => {
      let pos = start;
      let k = 0;
      try {
        while (pos <= end) {
          if (inFlight[k] && !(await inFlight[k])) return;
          if (closed) return;
          const { bytesRead } = await handle.read(slabs[k], 0, Math.min(SLAB_BYTES, end - pos + 1), pos);
          if (closed) return;
          if (bytesRead === 0) throw new Error(`body file ended at byte ${pos}, before ${end + 1}`);
          pos += bytesRead;
          countBytes(res, bytesRead);
          inFlight[k] = send(slabs[k].subarray(0, bytesRead));
          k ^= 1;
        }
        const written = await Promise.all(inFlight);
        if (written.includes(false) || closed) return;
        clean = true;
        res.end();
      } catch (err) {
        res.destroy(err as Error);
      }
    })();
  });
}
