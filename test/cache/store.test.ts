import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { EntryStore } from '../../src/cache/store/entryStore';
import { CorruptEntryError } from '../../src/cache/entryMeta';
import { bodyOf, metaFor, rawFields, writeLegacyEntry, writeLegacyIndex } from '../helpers/storeEntries';
import { filesUnder } from '../helpers/files';

function tempDir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'cp-store-'));
}

async function withStore(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = tempDir();
  try {
    await fn(dir);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

async function putBody(store: EntryStore, url: string, body: Buffer): Promise<void> {
  const writer = store.newWriter();
  for (let at = 0; at < body.length; at += 65_536) writer.write(body.subarray(at, at + 65_536));
  await store.commit(writer, metaFor(url, body));
}

/** The entry's body as a reader gets it: inline, or read from its checked file. */
async function bodyFrom(store: EntryStore, url: string): Promise<Buffer | null> {
  const { hash } = metaFor(url, Buffer.alloc(0));
  const found = await store.get(hash);
  if (!found) return null;
  return found.body ?? (await store.readBody(hash, found.meta.digest, found.meta.size));
}


const BIG = 300_000;
const url = (i: number) => `http://origin.test/item/${i}`;

test('store: small bodies inline in a pack, large ones in files of their own; both back after a clean restart', () =>
  withStore(async (dir) => {
    let store = await EntryStore.open(dir, { maxBytes: 1e9 });
    for (let i = 0; i < 200; i++) await putBody(store, url(i), bodyOf(url(i), i === 7 ? BIG : 1024));
    assert.equal(store.count, 200);
    await store.close();
    const files = filesUnder(path.join(dir, 'store')).map((f) => path.relative(dir, f));
    assert.deepEqual(files.filter((f) => f.includes('bodies')).length, 1, `one body file, for the large entry: ${files.join(', ')}`);
    assert.ok(files.includes('store/packs/0.pack'));
    assert.ok(files.includes('store/index.snap'));
    for (const f of filesUnder(dir)) assert.equal(fs.statSync(f).mode & 0o777, 0o600, f);

    store = await EntryStore.open(dir, { maxBytes: 1e9 });
    assert.equal(store.report.fromSnapshot, true);
    assert.equal(store.report.journalRecords, 0);
    assert.equal(store.count, 200);
    for (let i = 0; i < 200; i++) assert.ok((await bodyFrom(store, url(i)))!.equals(bodyOf(url(i), i === 7 ? BIG : 1024)), url(i));
    const { meta } = (await store.get(metaFor(url(3), Buffer.alloc(0)).hash))!;
    assert.equal(meta.url, url(3));
    assert.deepEqual(rawFields(meta).slice(0, 2), ['Content-Type', 'application/octet-stream']);
    await store.close();
  }));

test('store: 1 KiB bodies take less than 1.5x their bytes on disk (metadata deflated beside them)', () =>
  withStore(async (dir) => {
    const store = await EntryStore.open(dir, { maxBytes: 1e9 });
    for (let i = 0; i < 2000; i++) await putBody(store, url(i), bodyOf(url(i), 1024));
    await store.close();
    const onDisk = filesUnder(path.join(dir, 'store')).reduce((n, f) => n + fs.statSync(f).blocks * 512, 0);
    const ratio = onDisk / (2000 * 1024);
    console.log(`1 KiB bodies: ${ratio.toFixed(3)}x on disk`);
    assert.ok(ratio < 1.5, `disk ${onDisk} bytes for ${2000 * 1024} bytes of bodies: ${ratio.toFixed(2)}x`);
  }));

test('store: without a clean close (the journal only), every committed entry is back, in LRU order', () =>
  withStore(async (dir) => {
    const first = await EntryStore.open(dir, { maxBytes: 1e9 });
    for (let i = 0; i < 50; i++) await putBody(first, url(i), bodyOf(url(i), 500));
    first.remove(metaFor(url(10), Buffer.alloc(0)).hash);
    first.touch(metaFor(url(0), Buffer.alloc(0)).hash);
    (first as unknown as { flushTouches(): void }).flushTouches();
    // No close: as after SIGKILL (the journal's writes are done; the page cache keeps them).
    const second = await EntryStore.open(dir, { maxBytes: 1e9 });
    assert.equal(second.report.fromSnapshot, false);
    assert.ok(second.report.journalRecords >= 52);
    assert.equal(second.count, 49);
    assert.equal(await bodyFrom(second, url(10)), null);
    assert.ok((await bodyFrom(second, url(20)))!.equals(bodyOf(url(20), 500)));
    const order = [...second.prefixesOldestFirst()];
    assert.equal(order[order.length - 1], metaFor(url(0), Buffer.alloc(0)).hash.slice(0, 16), 'the touched entry is the most recent');
    assert.equal(order[0], metaFor(url(1), Buffer.alloc(0)).hash.slice(0, 16));
    await second.close();
  }));

test('store: a torn journal tail is cut off, and what is appended after it is replayed next time', () =>
  withStore(async (dir) => {
    let store = await EntryStore.open(dir, { maxBytes: 1e9 });
    for (let i = 0; i < 5; i++) await putBody(store, url(i), bodyOf(url(i), 100));
    const journal = path.join(dir, 'store', 'journal.0');
    fs.appendFileSync(journal, Buffer.from([1, 2, 3, 4, 5, 6, 7])); // half a record
    store = await EntryStore.open(dir, { maxBytes: 1e9 });
    assert.equal(store.count, 5);
    assert.equal(fs.statSync(journal).size % 32, 0, 'cut back to whole records');
    await putBody(store, url(5), bodyOf(url(5), 100));
    store = await EntryStore.open(dir, { maxBytes: 1e9 });
    assert.equal(store.count, 6);
    assert.ok((await bodyFrom(store, url(5)))!.equals(bodyOf(url(5), 100)));
    await store.close();
  }));

test('store: the size limit evicts least recently used first, and holds across a restart with a smaller limit', () =>
  withStore(async (dir) => {
    const evicted: string[] = [];
    let store = await EntryStore.open(dir, { maxBytes: 1e9 });
    for (let i = 0; i < 100; i++) await putBody(store, url(i), bodyOf(url(i), 1000));
    const perEntry = store.bytes / 100;
    for (let i = 0; i < 10; i++) store.touch(metaFor(url(i), Buffer.alloc(0)).hash);
    await store.close();
    const limit = Math.floor(perEntry * 40.5);
    store = await EntryStore.open(dir, { maxBytes: limit, onEvict: (p) => evicted.push(p) });
    assert.equal(store.count, 40);
    assert.ok(store.bytes <= limit && store.bytes >= limit * 0.97, `${store.bytes} of ${limit}`);
    for (let i = 0; i < 10; i++) assert.ok(await bodyFrom(store, url(i)), `touched ${url(i)} kept`);
    for (let i = 10; i < 70; i++) assert.equal(await bodyFrom(store, url(i)), null, `${url(i)} evicted`);
    for (let i = 70; i < 100; i++) assert.ok(await bodyFrom(store, url(i)), `recent ${url(i)} kept`);
    assert.equal(evicted.length, 60);
    assert.equal(evicted[0], metaFor(url(10), Buffer.alloc(0)).hash.slice(0, 16));
    await store.close();
  }));

test('store: a damaged record or body file is reported as corrupt, removed, never returned', () =>
  withStore(async (dir) => {
    let store = await EntryStore.open(dir, { maxBytes: 1e9 });
    await putBody(store, url(1), bodyOf(url(1), 2000));
    await putBody(store, url(2), bodyOf(url(2), BIG));
    await putBody(store, url(3), bodyOf(url(3), 2000));
    await store.close();
    // One bit of the first record's body, and one byte of the large body's file.
    const pack = path.join(dir, 'store', 'packs', '0.pack');
    const bytes = fs.readFileSync(pack);
    bytes[1500] ^= 0x04;
    fs.writeFileSync(pack, bytes);
    const [bodyFile] = filesUnder(path.join(dir, 'store', 'bodies'));
    const big = fs.readFileSync(bodyFile);
    big[BIG - 1] ^= 0x01;
    fs.writeFileSync(bodyFile, big);
    store = await EntryStore.open(dir, { maxBytes: 1e9 });
    await assert.rejects(store.get(metaFor(url(1), Buffer.alloc(0)).hash), CorruptEntryError);
    assert.equal(await store.get(metaFor(url(1), Buffer.alloc(0)).hash), null, 'removed once found damaged');
    const found = await store.get(metaFor(url(2), Buffer.alloc(0)).hash);
    await assert.rejects(store.readBody(found!.meta.hash, found!.meta.digest, found!.meta.size), CorruptEntryError);
    assert.equal(store.has(found!.meta.hash), false);
    assert.ok((await bodyFrom(store, url(3)))!.equals(bodyOf(url(3), 2000)), 'the undamaged entry is served');
    await store.close();
  }));

test('store: packs mostly garbage are compacted; entries keep their bodies and LRU order', () =>
  withStore(async (dir) => {
    const store = await EntryStore.open(dir, { maxBytes: 1e9, packBytes: 64 * 1024 });
    for (let round = 0; round < 4; round++) {
      for (let i = 0; i < 60; i++) await putBody(store, url(i), bodyOf(`${url(i)}#${round}`, i % 20 === 0 ? BIG : 1500));
    }
    await store.close();
    const reopened = await EntryStore.open(dir, { maxBytes: 1e9, packBytes: 64 * 1024 });
    await reopened.whenIdle();
    const usage = reopened.diskUsage();
    assert.ok(usage.packBytes < usage.liveBytes * 2, `packs ${usage.packBytes} bytes for ${usage.liveBytes} live`);
    for (let i = 0; i < 60; i++) assert.ok((await bodyFrom(reopened, url(i)))!.equals(bodyOf(`${url(i)}#3`, i % 20 === 0 ? BIG : 1500)), url(i));
    const bodies = filesUnder(path.join(dir, 'store', 'bodies'));
    assert.equal(bodies.length, 3, 'one file per large entry, old versions removed');
    await reopened.close();
  }));

test('store: under a small size limit, replaced and evicted records are compacted away: the packs stay within 1.5x the limit', () =>
  withStore(async (dir) => {
    const limit = 16 * 1024 * 1024;
    const store = await EntryStore.open(dir, { maxBytes: limit });
    // 32 MiB written into a 16 MiB cache: half of it evicted, a quarter of it replaced.
    for (let i = 0; i < 8000; i++) {
      const n = i % 6000;
      await putBody(store, url(n), bodyOf(`${url(n)}#${i}`, 4096));
    }
    await store.whenIdle();
    const { packBytes, liveBytes } = store.diskUsage();
    console.log(`16 MiB limit: ${liveBytes} live bytes in ${packBytes} bytes of packs (${(packBytes / limit).toFixed(2)}x the limit)`);
    assert.ok(liveBytes <= limit && liveBytes >= limit * 0.99, `${liveBytes} live bytes`);
    assert.ok(packBytes <= limit * 1.5, `${packBytes} bytes of packs for a limit of ${limit}`);
    await store.close();
  }));

test('store: pack numbers past 65,535 (a long-lived cache) are kept whole in the journal, the snapshot and the index', () =>
  withStore(async (dir) => {
    // As if 70,000 packs had been written and compacted away before: the next one is 70,000.
    fs.mkdirSync(path.join(dir, 'store', 'packs'), { recursive: true });
    fs.writeFileSync(path.join(dir, 'store', 'packs', '70000.pack'), '');
    const first = await EntryStore.open(dir, { maxBytes: 1e9 });
    for (let i = 0; i < 20; i++) await putBody(first, url(i), bodyOf(url(i), i === 3 ? BIG : 1000));
    // No close: read back from the journal, as after SIGKILL.
    const second = await EntryStore.open(dir, { maxBytes: 1e9 });
    assert.equal(second.count, 20);
    for (let i = 0; i < 20; i++) assert.ok((await bodyFrom(second, url(i)))!.equals(bodyOf(url(i), i === 3 ? BIG : 1000)), `${url(i)} from the journal`);
    await second.close();
    const third = await EntryStore.open(dir, { maxBytes: 1e9 });
    assert.equal(third.report.fromSnapshot, true);
    for (let i = 0; i < 20; i++) assert.ok((await bodyFrom(third, url(i)))!.equals(bodyOf(url(i), i === 3 ? BIG : 1000)), `${url(i)} from the snapshot`);
    await third.close();
  }));

/** Opens a store and resolves once its migration of the old layout has finished. */
async function openAndMigrate(dir: string, whileMigrating: (store: EntryStore) => Promise<void> = async () => {}): Promise<{ store: EntryStore; migrated: number }> {
  let finished!: (n: number) => void;
  const migrated = new Promise<number>((resolve) => (finished = resolve));
  const store = await EntryStore.open(dir, { maxBytes: 1e9, onMigrated: (n) => finished(n) });
  assert.equal(store.migrating, true);
  await whileMigrating(store);
  return { store, migrated: await migrated };
}

test('store: migrates a cache of the old layout in the background, serving its entries meanwhile, keeping their LRU order', () =>
  withStore(async (dir) => {
    const metas = [];
    for (let i = 0; i < 30; i++) metas.push(writeLegacyEntry(dir, url(i), bodyOf(url(i), i === 4 ? BIG : 800)));
    writeLegacyIndex(dir, metas);
    const { store, migrated } = await openAndMigrate(dir, async (s) => {
      // The oldest entry, which the background pass (newest first) reaches last: found in the old files by its hash.
      assert.ok((await bodyFrom(s, url(0)))!.equals(bodyOf(url(0), 800)));
    });
    assert.equal(migrated, 30, 'every entry imported (one on demand, the rest in the background)');
    assert.equal(store.count, 30);
    assert.ok(!fs.existsSync(path.join(dir, 'entries')) && !fs.existsSync(path.join(dir, 'index.json')), 'the old layout is removed');
    for (let i = 0; i < 30; i++) assert.ok((await bodyFrom(store, url(i)))!.equals(bodyOf(url(i), i === 4 ? BIG : 800)), url(i));
    const order = [...store.prefixesOldestFirst()];
    assert.deepEqual(
      order,
      [...metas.slice(1), metas[0]].map((m) => m.hash.slice(0, 16)),
      'the old order, and the one used during migration is the newest',
    );
    await store.close();
  }));

test('store: an old entry damaged on disk is dropped by the migration, the others come over', () =>
  withStore(async (dir) => {
    const a = writeLegacyEntry(dir, url(1), bodyOf(url(1), 900));
    writeLegacyEntry(dir, url(2), bodyOf(url(2), 900));
    const bodyFile = path.join(dir, 'entries', a.hash.slice(0, 2), `${a.hash}.body`);
    fs.writeFileSync(bodyFile, Buffer.alloc(900, 0x41));
    const { store } = await openAndMigrate(dir);
    assert.equal(store.count, 1);
    assert.equal(await bodyFrom(store, url(1)), null);
    assert.ok((await bodyFrom(store, url(2)))!.equals(bodyOf(url(2), 900)));
    await store.close();
  }));

test('store: after a crash, a body file whose record was never written is removed in the background', () =>
  withStore(async (dir) => {
    const first = await EntryStore.open(dir, { maxBytes: 1e9 });
    await putBody(first, url(1), bodyOf(url(1), BIG));
    await putBody(first, url(2), bodyOf(url(2), 500));
    // As if killed between moving a body into place and writing its record.
    const [bodyFile] = filesUnder(path.join(dir, 'store', 'bodies'));
    const orphan = path.join(path.dirname(bodyFile), (999_999).toString(36));
    fs.copyFileSync(bodyFile, orphan);
    const second = await EntryStore.open(dir, { maxBytes: 1e9 });
    assert.equal(second.report.afterCrash, true);
    await second.whenIdle();
    assert.equal(fs.existsSync(orphan), false, 'the orphan is gone');
    assert.ok((await bodyFrom(second, url(1)))!.equals(bodyOf(url(1), BIG)), 'the live body stays');
    await second.close();
  }));

/** The pid of a process that ran and is gone. */
async function deadPid(): Promise<number> {
  const child = spawn(process.execPath, ['-e', '']);
  await once(child, 'exit');
  return child.pid!;
}

test('store: killed right after a checkpoint (an empty journal), the lock it left says so, and its orphan body file is removed', () =>
  withStore(async (dir) => {
    const first = await EntryStore.open(dir, { maxBytes: 1e9 });
    await putBody(first, url(1), bodyOf(url(1), BIG));
    await first.close();
    // The state a SIGKILL leaves after a checkpoint, between moving a new body into place and
    // writing its record: snapshot, empty journal, the body file, and the lock.
    const [bodyFile] = filesUnder(path.join(dir, 'store', 'bodies'));
    const orphan = path.join(path.dirname(bodyFile), (999_999).toString(36));
    fs.copyFileSync(bodyFile, orphan);
    const killed = await deadPid();
    fs.writeFileSync(path.join(dir, 'store', 'lock'), String(killed));
    const second = await EntryStore.open(dir, { maxBytes: 1e9 });
    assert.equal(second.report.journalRecords, 0, 'nothing in the journal to tell of the crash');
    assert.equal(second.report.afterCrash, true);
    assert.equal(second.report.staleLockHolder, killed);
    await second.whenIdle();
    assert.equal(fs.existsSync(orphan), false, 'the orphan is gone');
    assert.ok((await bodyFrom(second, url(1)))!.equals(bodyOf(url(1), BIG)), 'the live body stays');
    await second.close();
    const third = await EntryStore.open(dir, { maxBytes: 1e9 });
    assert.equal(third.report.afterCrash, false, 'a clean close leaves no lock');
    await third.close();
  }));

test('store: a lock whose pid now belongs to another process (started later), or to a killed holder not yet reaped, is taken over; a live holder keeps it', () =>
  withStore(async (dir) => {
    const holder = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60_000)']);
    await once(holder, 'spawn');
    try {
      const stat = fs.readFileSync(`/proc/${holder.pid}/stat`, 'utf8');
      const started = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
      fs.mkdirSync(path.join(dir, 'store'), { recursive: true });
      const lock = path.join(dir, 'store', 'lock');
      fs.writeFileSync(lock, `${holder.pid} ${started}`);
      await assert.rejects(EntryStore.open(dir, { maxBytes: 1e9 }), new RegExp(`in use by process ${holder.pid}`));
      // The same pid, but the lock's writer started at another time: a reused pid, not the holder.
      fs.writeFileSync(lock, `${holder.pid} ${Number(started) - 1}`);
      const store = await EntryStore.open(dir, { maxBytes: 1e9 });
      assert.equal(store.report.afterCrash, true);
      assert.equal(store.report.staleLockHolder, holder.pid);
      assert.match(fs.readFileSync(lock, 'utf8'), new RegExp(`^${process.pid} \\d+$`), 'the lock names this process and its start');
      await store.close();
      // A holder killed but not yet reaped by its parent (a zombie) holds nothing: here a child
      // of `sleep`, which never reaps.
      const parent = spawn('sh', ['-c', 'sleep 0.2 & echo $!; exec sleep 60']);
      try {
        const [line] = (await once(parent.stdout!, 'data')) as [Buffer];
        const zombie = Number(line.toString().trim());
        let zstat = '';
        while (!/^\S+ \(sleep\) Z /.test((zstat = fs.readFileSync(`/proc/${zombie}/stat`, 'utf8')))) await new Promise((resolve) => setTimeout(resolve, 10));
        fs.writeFileSync(lock, `${zombie} ${zstat.slice(zstat.lastIndexOf(')') + 2).split(' ')[19]}`);
        const again = await EntryStore.open(dir, { maxBytes: 1e9 });
        assert.equal(again.report.staleLockHolder, zombie, 'the zombie\'s lock is taken over');
        await again.close();
      } finally {
        parent.kill();
      }
    } finally {
      holder.kill();
    }
  }));

test('store: while the index loads in the background, lookups, writes and removals wait for it; nothing is missed or lost', () =>
  withStore(async (dir) => {
    let store = await EntryStore.open(dir, { maxBytes: 1e9 });
    for (let i = 0; i < 300; i++) await putBody(store, url(i), bodyOf(url(i), i === 7 ? BIG : 1024));
    await store.close();

    store = await EntryStore.start(dir, { maxBytes: 1e9 });
    // start() resolves before the index has been read: it reads the snapshot asynchronously.
    assert.equal(store.loaded, false);
    const hash = (i: number) => metaFor(url(i), Buffer.alloc(0)).hash;
    const lookedUp = store.get(hash(5));
    const big = bodyFrom(store, url(7));
    const replaced = putBody(store, url(6), bodyOf(url(6) + 'v2', 1024));
    const added = putBody(store, url(1000), bodyOf(url(1000), 1024));
    store.remove(hash(8));
    assert.equal((await lookedUp)!.meta.url, url(5), 'a stored entry looked up while loading is found');
    assert.ok((await big)!.equals(bodyOf(url(7), BIG)));
    await Promise.all([replaced, added]);
    await store.ready;
    assert.equal(store.loaded, true);
    await store.settled();
    assert.ok((await bodyFrom(store, url(6)))!.equals(bodyOf(url(6) + 'v2', 1024)), 'the write made while loading is not overwritten by the index');
    assert.ok((await bodyFrom(store, url(1000)))!.equals(bodyOf(url(1000), 1024)));
    assert.equal(await store.get(hash(8)), null);
    assert.equal(store.count, 300 - 1 + 1);
    await store.close();

    store = await EntryStore.open(dir, { maxBytes: 1e9 });
    assert.equal(store.count, 300);
    assert.ok((await bodyFrom(store, url(6)))!.equals(bodyOf(url(6) + 'v2', 1024)));
    assert.equal(await store.get(hash(8)), null);
    await store.close();
  }));

test('store: a kept index reference (touchRef) touches its own entry only: once the entry is removed and its place reused, it finds by hash or not at all; the order holds across a restart', () =>
  withStore(async (dir) => {
    const hashOf = (i: number) => metaFor(url(i), Buffer.alloc(0)).hash;
    const prefix = (i: number) => hashOf(i).slice(0, 16);
    const store = await EntryStore.open(dir, { maxBytes: 1e9 });
    for (let i = 0; i < 3; i++) await putBody(store, url(i), bodyOf(url(i), 100));
    const ref0 = { hash: hashOf(0), diskId: -1, diskStamp: 0 };
    const ref1 = { hash: hashOf(1), diskId: -1, diskStamp: 0 };
    store.touchRef(ref0);
    assert.ok(ref0.diskId >= 0, 'the place is kept');
    assert.deepEqual([...store.prefixesOldestFirst()], [prefix(1), prefix(2), prefix(0)]);
    store.remove(hashOf(0));
    // Entry 3 takes the freed place of entry 0; entry 4 comes after it.
    await putBody(store, url(3), bodyOf(url(3), 100));
    await putBody(store, url(4), bodyOf(url(4), 100));
    store.touchRef(ref0);
    assert.deepEqual([...store.prefixesOldestFirst()], [prefix(1), prefix(2), prefix(3), prefix(4)], 'the stale reference touched nothing');
    store.touchRef(ref1);
    store.touchRef(ref1);
    assert.deepEqual([...store.prefixesOldestFirst()], [prefix(2), prefix(3), prefix(4), prefix(1)]);
    // Entry 0 stored again: the old reference finds it by its hash.
    await putBody(store, url(0), bodyOf(url(0), 100));
    store.touchRef({ hash: hashOf(2), diskId: ref0.diskId, diskStamp: ref0.diskStamp });
    store.touchRef(ref0);
    assert.deepEqual([...store.prefixesOldestFirst()], [prefix(3), prefix(4), prefix(1), prefix(2), prefix(0)]);
    (store as unknown as { flushTouches(): void }).flushTouches();
    // No close: the journal's touch records alone rebuild the order.
    const second = await EntryStore.open(dir, { maxBytes: 1e9 });
    assert.deepEqual([...second.prefixesOldestFirst()], [prefix(3), prefix(4), prefix(1), prefix(2), prefix(0)]);
    await second.close();
  }));

test('store: a synchronous lookup (getNow) gives each inline body a buffer of its own, and reads metadata of several KiB whole', () =>
  withStore(async (dir) => {
    const store = await EntryStore.open(dir, { maxBytes: 1e9 });
    const many = (i: number) => {
      const meta = metaFor(url(i), bodyOf(url(i), 1024));
      // Over 2 KiB of JSON with these: inflated in more than one chunk.
      for (let n = 0; n < 40; n++) meta.raw.push(`X-Field-${n}`, `${i}-${'v'.repeat(60)}`);
      return meta;
    };
    for (let i = 0; i < 20; i++) {
      const writer = store.newWriter();
      writer.write(bodyOf(url(i), 1024));
      await store.commit(writer, many(i));
    }
    const bodies: Buffer[] = [];
    for (let i = 0; i < 20; i++) {
      const found = store.getNow(metaFor(url(i), Buffer.alloc(0)).hash)!;
      assert.ok(found, url(i));
      assert.deepEqual(rawFields(found.meta), many(i).raw, 'the metadata read back whole');
      // Kept in the memory tier, a view into a record read (or a slab of Node's pool) would pin
      // it: the body must be the whole of its own buffer.
      assert.equal(found.body!.byteOffset, 0);
      assert.equal(found.body!.buffer.byteLength, 1024);
      bodies.push(found.body!);
    }
    // Later lookups do not change what earlier ones returned.
    for (let i = 0; i < 20; i++) assert.ok(bodies[i].equals(bodyOf(url(i), 1024)), url(i));
    await store.close();
  }));
