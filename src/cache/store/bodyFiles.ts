import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { fileMatches } from '../digest';
import { CorruptEntryError } from '../entryMeta';
import { VerifiedFiles } from './verified';

const DIR_MODE = 0o700;

/** Where bodies over INLINE_MAX live: bodies/<pack>/<offset in base 36>, named after their record's place. */
export class BodyFiles {
  private readonly knownDirs = new Set<number>();
  private readonly verified = new VerifiedFiles();

  constructor(readonly dir: string) {}

  pathOf(loc: { pack: number; offset: number }): string {
    return path.join(this.dir, String(loc.pack), loc.offset.toString(36));
  }

  async ensureDir(pack: number): Promise<void> {
    if (this.knownDirs.has(pack)) return;
    await fsp.mkdir(path.join(this.dir, String(pack)), { recursive: true, mode: DIR_MODE });
    this.knownDirs.add(pack);
  }

  /** Removes a pack's whole body directory (the pack was compacted away). */
  async removePack(pack: number): Promise<void> {
    await fsp.rm(path.join(this.dir, String(pack)), { recursive: true, force: true });
    this.knownDirs.delete(pack);
  }

  /**
   * Opens a body file, checked against its size and digest: read through once, then trusted
   * while its inode, size and times stay the same (verified.ts). CorruptEntryError otherwise.
   */
  async openChecked(loc: { pack: number; offset: number }, expected: string, size: number): Promise<fsp.FileHandle> {
    const file = this.pathOf(loc);
    let handle: fsp.FileHandle;
    try {
      handle = await fsp.open(file, 'r');
    } catch (err) {
      throw new CorruptEntryError(`body unreadable (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
    }
    try {
      const stat = await handle.stat({ bigint: true });
      if (stat.size !== BigInt(size)) throw new CorruptEntryError(`body is ${stat.size} bytes, expected ${size}`);
      if (this.verified.unchanged(file, expected, stat)) return handle;
      if (!(await fileMatches(handle, expected, size))) throw new CorruptEntryError('body digest mismatch');
      this.verified.remember(file, expected, stat);
      return handle;
    } catch (err) {
      await handle.close().catch(() => {});
      throw err;
    }
  }

  /** A body just written, its digest computed from the bytes as they went out: verified as of now. */
  rememberWritten(file: string, digest: string): Promise<void> {
    return this.verified.rememberWritten(file, digest);
  }

  /** The whole of an open body file. */
  static async readWhole(handle: fsp.FileHandle, size: number): Promise<Buffer> {
    const body = Buffer.allocUnsafe(size);
    let got = 0;
    while (got < size) {
      const { bytesRead } = await handle.read(body, got, size - got, got);
      if (bytesRead === 0) throw new CorruptEntryError(`body is ${got} bytes, expected ${size}`);
      got += bytesRead;
    }
    return body;
  }
}
