import * as fs from 'node:fs';
import * as zlib from 'node:zlib';

/** The CRC-32 digest string the cache records (see src/cache/digest.ts). */
export function crc32Digest(data: Buffer | string): string {
  return `crc32:${zlib.crc32(data).toString(16).padStart(8, '0')}`;
}

/** A metadata file's JSON: the first line (the second holds its digest). */
export function readMetaFile(file: string): Record<string, unknown> {
  const text = fs.readFileSync(file, 'utf8');
  const lineEnd = text.indexOf('\n');
  return JSON.parse(lineEnd < 0 ? text : text.slice(0, lineEnd)) as Record<string, unknown>;
}
