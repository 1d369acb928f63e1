import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { EntryStore } from '../../src/cache/store/entryStore';
import { bodyOf, metaFor, writeLegacyEntry, writeLegacyIndex } from '../helpers/storeEntries';
import { filesUnder } from '../helpers/files';

/**
 * The disk store killed with SIGKILL at random moments while it writes, replaces and removes
 * entries (small ones packed, large ones in files) and while it migrates an old-layout cache:
 * afterwards every entry whose write had completed is there byte for byte, every other one is
 * absent or a whole version that was being written, nothing is reported corrupt, and the
 * leftovers of interrupted writes (temp files, body files without a record) are removed.
 */

const CHILD = path.resolve(__dirname, '../helpers/storeChild.js');

interface Log {
  /** url -> its last completed version (0: removed). */
  state: Map<string, number>;
  /** url -> versions started, not known to have completed. */
  started: Map<string, Map<number, number>>;
  oks: number;
  /** Hash prefixes of evicted entries (their URLs are not in the line). */
  evicted: Set<string>;
}

function parse(lines: string[], log: Log): void {
  for (const line of lines) {
    const [what, url, v, size] = line.split(' ');
    if (what === 'start') {
      if (!log.started.has(url)) log.started.set(url, new Map());
      log.started.get(url)!.set(Number(v), Number(size));
    } else if (what === 'ok') {
      log.state.set(url, Number(v));
      // Written again after an eviction: it must be there.
      log.evicted.delete(metaFor(url, Buffer.alloc(0)).hash.slice(0, 16));
      log.oks++;
    } else if (what === 'rm') log.state.set(url, 0);
    else if (what === 'evict') log.evicted.add(url);
  }
}

/** Runs the writer child until it has completed `okTarget` puts (or opened, for 0), then SIGKILLs it. */
function runAndKill(dir: string, seed: number, okTarget: number, log: Log, env: Record<string, string> = {}): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CHILD], { env: { ...process.env, STORE_CHILD_DIR: dir, STORE_CHILD_SEED: String(seed), STORE_CHILD_URLS: '150', ...env }, stdio: ['ignore', 'pipe', 'inherit'] });
    let pending = '';
    let oks = 0;
    let opened = false;
    let killed = false;
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (chunk: string) => {
      pending += chunk;
      const lines = pending.split('\n');
      pending = lines.pop()!;
      parse(lines, log);
      for (const l of lines) {
        if (l.startsWith('open ')) opened = true;
        if (l.startsWith('ok ')) oks++;
      }
      if (!killed && opened && oks >= okTarget) {
        killed = true;
        child.kill('SIGKILL');
      }
    });
    child.once('exit', (code, signal) => {
      // What was printed before the kill still counts.
      parse(pending ? [pending] : [], log);
      if (signal === 'SIGKILL') resolve();
      else reject(new Error(`the writer exited by itself (code ${code}) before the kill`));
    });
  });
}


/** Checks every URL the writer touched against the log; returns how many entries are present. */
async function verify(store: EntryStore, log: Log): Promise<number> {
  let present = 0;
  const urls = new Set([...log.state.keys(), ...log.started.keys()]);
  for (const url of urls) {
    const { hash } = metaFor(url, Buffer.alloc(0));
    const done = log.state.get(url);
    const found = await store.get(hash); // throws CorruptEntryError if anything was damaged
    if (!found) {
      // Absent is right only if nothing completed since the last removal, or it was evicted.
      assert.ok(done === undefined || done === 0 || log.evicted.has(hash.slice(0, 16)), `${url}: version ${done} had completed, and is gone`);
      continue;
    }
    present++;
    const body = found.body ?? (await store.readBody(hash, found.meta.digest, found.meta.size));
    const candidates = new Map(log.started.get(url) ?? []);
    // Newest first: two versions can have the same bytes (empty bodies).
    const match = [...candidates].sort((a, b) => b[0] - a[0]).find(([v, size]) => body.length === size && body.equals(bodyOf(`${url}#${v}`, size)));
    assert.ok(match, `${url}: the body (${body.length} bytes) is a whole version that was written`);
    // Only the last completed version, or one started after it, may be there.
    if (done) assert.ok(match[0] >= done || !candidates.has(done), `${url}: version ${match[0]} is older than the completed ${done}`);
  }
  return present;
}

test('SIGKILL at random moments while the store writes, replaces and removes entries: what completed survives, nothing is corrupt', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'faults-store-kill-'));
  const log: Log = { state: new Map(), started: new Map(), oks: 0, evicted: new Set() };
  try {
    const targets = [40, 1, 120, 7, 300, 60];
    for (let round = 0; round < targets.length; round++) {
      await runAndKill(dir, round + 1, targets[round], log);
      const store = await EntryStore.open(dir, { maxBytes: 1e12 });
      assert.ok(store.report.afterCrash, 'the start knows the last run did not stop cleanly');
      assert.deepEqual(fs.readdirSync(path.join(dir, 'tmp')), [], 'temp files of interrupted writes are removed at start');
      const present = await verify(store, log);
      assert.equal(present, store.count, 'nothing in the index that the writer did not write');
      await store.whenIdle();
      const bodyFiles = filesUnder(path.join(dir, 'store', 'bodies')).length;
      let withFiles = 0;
      for (const url of new Set([...log.state.keys(), ...log.started.keys()])) if (store.hasBodyFile(metaFor(url, Buffer.alloc(0)).hash)) withFiles++;
      assert.equal(bodyFiles, withFiles, 'body files without a record (a kill between the two) are swept');
      console.log(`round ${round + 1}: killed after ${log.oks} completed writes in all; ${store.count} entries, ${bodyFiles} body files, ${store.report.journalRecords} journal records replayed in ${store.report.ms.toFixed(0)} ms`);
      // A clean stop: the next writer starts from the snapshot, and is killed in turn.
      await store.close();
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('SIGKILL while an old-layout cache is being migrated: every old entry arrives intact, none is lost', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'faults-store-migrate-'));
  try {
    const legacy = [];
    for (let i = 0; i < 400; i++) {
      const url = `http://legacy.test/old/${i}`;
      legacy.push(writeLegacyEntry(dir, url, bodyOf(url, i % 25 === 0 ? 150_000 : 700 + i)));
    }
    writeLegacyIndex(dir, legacy);
    const log: Log = { state: new Map(), started: new Map(), oks: 0, evicted: new Set() };
    for (const [round, target] of [0, 5, 30].entries()) {
      if (!fs.existsSync(path.join(dir, 'entries'))) break;
      await runAndKill(dir, 100 + round, target, log);
    }
    let finished!: () => void;
    const migrated = new Promise<void>((r) => (finished = r));
    const store = await EntryStore.open(dir, { maxBytes: 1e12, onMigrated: () => finished() });
    if (store.migrating) await migrated;
    for (const meta of legacy) {
      const found = await store.get(meta.hash);
      assert.ok(found, `${meta.url} survived the migration`);
      const body = found.body ?? (await store.readBody(meta.hash, found.meta.digest, found.meta.size));
      assert.ok(body.equals(bodyOf(meta.url, meta.size)), `${meta.url}: intact`);
    }
    await verify(store, log);
    assert.ok(!fs.existsSync(path.join(dir, 'entries')) && !fs.existsSync(path.join(dir, 'index.json')), 'the old layout is gone once migrated');
    await store.close();
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('SIGKILL while the index still loads in the background and writes wait for it, under a size limit: what completed survives unless evicted, the limit holds', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'faults-store-loading-'));
  const log: Log = { state: new Map(), started: new Map(), oks: 0, evicted: new Set() };
  const maxBytes = 3 * 1024 * 1024;
  try {
    // 0: killed as soon as the store takes writes, before its index is in.
    const targets = [30, 0, 2, 90, 0, 200];
    for (let round = 0; round < targets.length; round++) {
      await runAndKill(dir, 200 + round, targets[round], log, { STORE_CHILD_START: '1', STORE_CHILD_MAX_BYTES: String(maxBytes) });
      const store = await EntryStore.open(dir, { maxBytes });
      const present = await verify(store, log);
      assert.equal(present, store.count, 'nothing in the index that the writer did not write');
      assert.ok(store.bytes <= maxBytes, `${store.bytes} bytes stored, limit ${maxBytes}`);
      await store.whenIdle();
      console.log(`round ${round + 1}: ${log.oks} completed writes in all, ${log.evicted.size} evicted; ${store.count} entries, ${store.bytes} bytes`);
      await store.close();
    }
    assert.ok(log.evicted.size > 0, 'the limit was reached');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
