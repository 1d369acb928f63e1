import * as fsp from 'node:fs/promises';
import * as path from 'node:path';

const DIR_MODE = 0o700;

/** Where bodies over INLINE_MAX live: bodies/<pack>/<offset in base 36>, named after their record's place. */
export class BodyFiles {
  private readonly knownDirs = new Set<number>();

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
}
