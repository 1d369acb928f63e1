import { createHash } from 'node:crypto';
import type { FileHandle } from 'node:fs/promises';
import * as zlib from 'node:zlib';

/**
 * The check stored with each body so that a damaged file is never served: `crc32:<8 hex>`, or
 * a bare SHA-256 hex as entries stored before carry (and as new ones get where zlib.crc32,
 * Node ≥ 20.15, is missing). The cache directory is the user's own and owner-only; the check is
 * against truncation and corruption, not tampering, and CRC-32 finds those at a third of
 * SHA-256's cost, which was a fifth of a large miss.
 */
export interface BodyDigest {
  update(chunk: Buffer): void;
  /** The digest string, in the form of the kind it was made as. */
  finish(): string;
}

type Crc32 = (data: Buffer, value?: number) => number;
const crc32 = (zlib as unknown as { crc32?: Crc32 }).crc32;
const CRC32_PREFIX = 'crc32:';

class Crc32Digest implements BodyDigest {
  private value = 0;
  constructor(private readonly fn: Crc32) {}
  update(chunk: Buffer): void {
    this.value = this.fn(chunk, this.value);
  }
  finish(): string {
    return CRC32_PREFIX + this.value.toString(16).padStart(8, '0');
  }
}

class Sha256Digest implements BodyDigest {
  private readonly hash = createHash('sha256');
  update(chunk: Buffer): void {
    this.hash.update(chunk);
  }
  finish(): string {
    return this.hash.digest('hex');
  }
}

/** A digest of the kind new entries get. */
export function newBodyDigest(): BodyDigest {
  return crc32 ? new Crc32Digest(crc32) : new Sha256Digest();
}

/** A digest of the same kind as `expected`, to check a stored body against it; null when that kind cannot be computed here. */
export function digestLike(expected: string): BodyDigest | null {
  if (!expected.startsWith(CRC32_PREFIX)) return new Sha256Digest();
  return crc32 ? new Crc32Digest(crc32) : null;
}

export function bodyDigestOf(body: Buffer): string {
  const digest = newBodyDigest();
  digest.update(body);
  return digest.finish();
}

/** Whether `body` matches `expected` (false also when its kind cannot be computed here). */
export function bodyMatches(body: Buffer, expected: string): boolean {
  const digest = digestLike(expected);
  if (digest === null) return false;
  digest.update(body);
  return digest.finish() === expected;
}

/** Whether the first `size` bytes of an open file match `expected`, read through 1 MiB at a time (false also when its kind cannot be computed here). */
export async function fileMatches(handle: FileHandle, expected: string, size: number): Promise<boolean> {
  const digest = digestLike(expected);
  if (digest === null) return false;
  const buf = Buffer.allocUnsafe(Math.min(size, 1024 * 1024) || 1);
  let pos = 0;
  while (pos < size) {
    const { bytesRead } = await handle.read(buf, 0, Math.min(buf.length, size - pos), pos);
    if (bytesRead === 0) return false;
    digest.update(buf.subarray(0, bytesRead));
    pos += bytesRead;
  }
  return digest.finish() === expected;
}
