import * as fs from 'node:fs';
import * as path from 'node:path';

const LOCK_FILE = 'lock';

/** A process's state and start time (clock ticks since boot), from /proc on Linux; null elsewhere or if it is gone. */
function procStat(pid: number | 'self'): { state: string; started: string } | null {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may hold spaces and parentheses: count from the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return { state: fields[0], started: fields[19] };
  } catch {
    return null;
  }
}

/**
 * Whether the process that wrote the lock is still running. A pid alone can be reused (after a
 * reboot, or a crash long ago), so where the lock names the holder's start time the living
 * process must have the same one; a killed holder its parent has not reaped yet (a zombie)
 * holds nothing.
 */
function holderAlive(pid: number, started: string | undefined): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  const now = procStat(pid);
  if (!now) return true;
  if (now.state === 'Z' || now.state === 'X') return false;
  return !started || now.started === started;
}

/** What taking the lock found. */
export interface LockTaken {
  /** A previous holder left it behind: the store was not closed cleanly. */
  stale: boolean;
  /** That holder's pid, where the lock said. */
  holder: number | null;
}

/**
 * Takes the store directory for this process: two processes appending to one journal and one
 * pack would overwrite each other's records. A lock left by a process that is gone (killed), or
 * by this one, is taken over, and said so: the store was not closed cleanly. Throws when
 * another live process holds it.
 */
export function lockStore(storeDir: string): LockTaken {
  const file = path.join(storeDir, LOCK_FILE);
  const own = procStat('self')?.started;
  const taken: LockTaken = { stale: false, holder: null };
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      fs.writeFileSync(file, own ? `${process.pid} ${own}` : String(process.pid), { flag: 'wx', mode: 0o600 });
      return taken;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    let pid = 0;
    let started: string | undefined;
    try {
      const [pidText, startedText] = fs.readFileSync(file, 'utf8').trim().split(' ');
      pid = Number(pidText);
      started = startedText;
    } catch {
      // Removed meanwhile: try again.
      continue;
    }
    if (Number.isInteger(pid) && pid > 0 && pid !== process.pid && holderAlive(pid, started)) {
      throw Object.assign(new Error(`it is in use by process ${pid}`), { code: 'ELOCKED' });
    }
    // Empty or unreadable content is a holder killed between creating and writing it.
    taken.stale = true;
    taken.holder = Number.isInteger(pid) && pid > 0 ? pid : null;
    fs.rmSync(file, { force: true });
  }
  throw Object.assign(new Error('its lock could not be taken'), { code: 'ELOCKED' });
}

/** Gives the directory up, if this process still holds it. */
export function unlockStore(storeDir: string): void {
  const file = path.join(storeDir, LOCK_FILE);
  try {
    if (Number(fs.readFileSync(file, 'utf8').trim().split(' ')[0]) === process.pid) fs.rmSync(file, { force: true });
  } catch {
    // Not there.
  }
}
