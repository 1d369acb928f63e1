import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { IndexJournal } from './journal';
import type { KeyIndex } from './keyIndex';
import { lockStore, unlockStore, type LockTaken } from './lock';
import { Packs } from './packs';

const DIR_MODE = 0o700;

/** What a store's start found, for the start-up notice and the tests. */
export interface OpenReport {
  entries: number;
  bytes: number;
  fromSnapshot: boolean;
  journalRecords: number;
  ms: number;
  /**
   * The previous run did not stop cleanly: it left its lock behind, or journal records after
   * the last snapshot (a crash right after a checkpoint leaves an empty journal, not the lock).
   */
  afterCrash: boolean;
  /** The pid of the process that left its lock behind, where the lock said. */
  staleLockHolder: number | null;
  /** An old-layout cache is being migrated in the background. */
  migrating: boolean;
  /** The index snapshot was unreadable: the entries it listed are lost (their packs are reclaimed). */
  snapshotDamaged: boolean;
}

/** A store directory made ready for writers, with its lock held. */
export interface PreparedDir {
  root: string;
  storeDir: string;
  tmpDir: string;
  lock: LockTaken;
}

/**
 * Makes the directories, checks they are writable, takes the lock and empties tmp (before any
 * writer of this run puts a file there). Reads no entry, so it takes the same time after a crash.
 */
export async function prepareStoreDir(dir: string): Promise<PreparedDir> {
  const root = path.resolve(dir);
  await fsp.mkdir(root, { recursive: true, mode: DIR_MODE });
  await fsp.chmod(root, DIR_MODE).catch(() => {});
  // Writable? Fail now (read-only dir or file system) rather than on the first response.
  await fsp.access(root, fs.constants.W_OK);
  const storeDir = path.join(root, 'store');
  const tmpDir = path.join(root, 'tmp');
  for (const d of [storeDir, tmpDir, path.join(storeDir, 'packs'), path.join(storeDir, 'bodies')]) await fsp.mkdir(d, { recursive: true, mode: DIR_MODE });
  const lock = lockStore(storeDir);
  try {
    for (const name of await fsp.readdir(tmpDir)) await fsp.unlink(path.join(tmpDir, name)).catch(() => {});
  } catch (err) {
    unlockStore(storeDir);
    throw err;
  }
  return { root, storeDir, tmpDir, lock };
}

/** The index and the files behind it, as a start finds them. */
export interface OpenedIndex {
  journal: IndexJournal;
  packs: Packs;
  index: KeyIndex;
  afterCrash: boolean;
  fromSnapshot: boolean;
  journalRecords: number;
  snapshotDamaged: boolean;
}

/** The index from the snapshot and journals, then the packs with each one's live bytes. */
export async function openIndex(storeDir: string, lock: LockTaken, packBytes: number): Promise<OpenedIndex> {
  const { journal, loaded } = await IndexJournal.load(storeDir);
  const afterCrash = lock.stale || loaded.journalRecords > 0;
  let packs: Packs;
  try {
    packs = Packs.open(path.join(storeDir, 'packs'), packBytes, afterCrash);
  } catch (err) {
    journal.close();
    throw err;
  }
  for (const [pack, bytes] of loaded.index.recordBytesByPack()) packs.addLive(pack, bytes);
  return {
    journal,
    packs,
    index: loaded.index,
    afterCrash,
    fromSnapshot: loaded.fromSnapshot,
    journalRecords: loaded.journalRecords,
    snapshotDamaged: loaded.snapshotDamaged,
  };
}
