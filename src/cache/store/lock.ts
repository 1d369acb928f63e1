import * as fs from 'node:fs';
import * as path from 'node:path';

const LOCK_FILE = 'lock';

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Takes the store directory for this process: two processes appending to one journal and one
 * pack would overwrite each other's records. A lock left by a process that is gone (killed), or
 * by this one, is taken over. Throws when another live process holds it.
 */
export function lockStore(storeDir: string): void {
  const file = path.join(storeDir, LOCK_FILE);
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      fs.writeFileSync(file, String(process.pid), { flag: 'wx', mode: 0o600 });
      return;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    let pid = 0;
    try {
      pid = Number(fs.readFileSync(file, 'utf8').trim());
    } catch {
      // Removed meanwhile: try again.
    }
    if (Number.isInteger(pid) && pid > 0 && pid !== process.pid && alive(pid)) {
      throw Object.assign(new Error(`it is in use by process ${pid}`), { code: 'ELOCKED' });
    }
    fs.rmSync(file, { force: true });
  }
  throw Object.assign(new Error('its lock could not be taken'), { code: 'ELOCKED' });
}

/** Gives the directory up, if this process still holds it. */
export function unlockStore(storeDir: string): void {
  const file = path.join(storeDir, LOCK_FILE);
  try {
    if (Number(fs.readFileSync(file, 'utf8').trim()) === process.pid) fs.rmSync(file, { force: true });
  } catch {
    // Not there.
  }
}
