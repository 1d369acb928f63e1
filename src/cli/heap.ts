import * as v8 from 'node:v8';

/**
 * How far V8 lets the old generation grow past what survived its last full collection, for the
 * proxy process: 1.3x (V8's own factor reaches 4x on a machine with memory to spare).
 *
 * Hits spread over a million stored entries load one entry each from disk into the memory tier
 * and push the least recently used out: about 4 KB of old-generation garbage per request, which
 * V8 collected only once the old generation was 2.5-3.5x its live size. With a 64 MB memory
 * tier that took the proxy to 358-399 MiB RSS (session 8, docs/BENCHMARKS.md "A million
 * entries"); with this factor, 239-261 MiB. Not a limit: the heap still grows with what is live
 * (a larger maxMemoryMB, many connections), so nothing runs out of memory because of it. The
 * cost is more frequent full collections while the memory tier churns: a cold hit took 121 µs
 * of CPU instead of 97 (hot hits, which make little old garbage, are not slowed).
 */
export const HEAP_GROWING_PERCENT = 30;

/** The V8 flag for the proxy process, or null when the user set one (node --heap-growing-percent, NODE_OPTIONS). */
export function heapGrowingFlag(execArgv: readonly string[], nodeOptions: string | undefined): string | null {
  const mentioned = (s: string) => /--heap[-_]growing[-_]percent\b/.test(s);
  if (execArgv.some(mentioned) || mentioned(nodeOptions ?? '')) return null;
  return `--heap-growing-percent=${HEAP_GROWING_PERCENT}`;
}

/**
 * Sets the growing factor in this process (the CLI and the extension's forked proxy, both
 * dist/cli.js). V8 reads it at every full collection, so it takes effect at once, unlike the heap
 * limits, which only a flag at start could set (and users start the CLI themselves).
 */
export function tuneHeapForProxy(): void {
  const flag = heapGrowingFlag(process.execArgv, process.env.NODE_OPTIONS);
  if (flag) v8.setFlagsFromString(flag);
}
