/**
 * A process that writes to an EntryStore until it is killed (test/cache/store-crash.test.ts).
 * It says on stdout what it is about to do and what is done, each line written synchronously,
 * so the test knows, after SIGKILL, what the store must hold.
 *   start <url> <version> <size>   a put is under way
 *   ok <url> <version>             the put resolved: it must survive
 *   rm <url>                       removed
 *   touch <url>
 *   evict <hash prefix>            about to be evicted (said before the store forgets it)
 * Run as a test file by `node --test` it does nothing.
 */
import * as fs from 'node:fs';
import { EntryStore } from '../../src/cache/store/entryStore';
import { bodyOf, metaFor } from './storeEntries';

const say = (line: string) => fs.writeSync(1, line + '\n');

async function main(): Promise<void> {
  const dir = process.env.STORE_CHILD_DIR!;
  const seed = Number(process.env.STORE_CHILD_SEED ?? 1);
  const urls = Number(process.env.STORE_CHILD_URLS ?? 300);
  const maxBytes = Number(process.env.STORE_CHILD_MAX_BYTES ?? 1e12);
  const options = { maxBytes, packBytes: 256 * 1024, onEvict: (prefix: string) => say(`evict ${prefix}`) };
  // STORE_CHILD_START=1: writes from the moment the store takes them, while its index still loads.
  const inBackground = process.env.STORE_CHILD_START === '1';
  const store = inBackground ? await EntryStore.start(dir, options) : await EntryStore.open(dir, options);
  say(inBackground ? `open loading` : `open ${store.count} ${store.migrating ? 'migrating' : 'plain'}`);
  let rnd = seed;
  const random = () => {
    rnd = (rnd * 1103515245 + 12345) & 0x7fffffff;
    return rnd / 0x7fffffff;
  };
  const versions = new Map<string, number>();
  const inFlight = new Set<Promise<void>>();
  // Bounded, should the test that kills it die first.
  setTimeout(() => process.exit(3), 60_000).unref();
  for (let n = 0; n < 200_000; n++) {
    const url = `http://origin.test/e/${Math.floor(random() * urls)}`;
    const r = random();
    if (r < 0.05) {
      store.remove(metaFor(url, Buffer.alloc(0)).hash);
      say(`rm ${url}`);
      continue;
    }
    if (r < 0.15) {
      store.touch(metaFor(url, Buffer.alloc(0)).hash);
      continue;
    }
    // Unique across runs (each has its own seed), growing within one.
    const version = (versions.get(url) ?? seed * 1_000_000) + 1;
    versions.set(url, version);
    const size = r < 0.25 ? 100_000 + Math.floor(random() * 200_000) : r < 0.3 ? 0 : 200 + Math.floor(random() * 3000);
    const body = bodyOf(`${url}#${version}`, size);
    say(`start ${url} ${version} ${size}`);
    const writer = store.newWriter();
    // In pieces, as a response arrives.
    for (let at = 0; at < body.length; at += 16_384) writer.write(body.subarray(at, at + 16_384));
    const put: Promise<void> = store.commit(writer, metaFor(url, body)).then(() => void say(`ok ${url} ${version}`));
    inFlight.add(put);
    void put.finally(() => inFlight.delete(put));
    if (inFlight.size >= 8) await Promise.race(inFlight);
  }
  await Promise.all(inFlight);
  await store.close();
}

if (require.main === module && process.env.STORE_CHILD_DIR) {
  main().catch((err) => {
    console.error(err);
    process.exit(1);
  });
}
