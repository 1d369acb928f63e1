/** HAR files in and out of a cache: what the CLI subcommands and the extension's proxy process both call. */
import { createWriteStream } from 'node:fs';
import { readFile, rename, unlink } from 'node:fs/promises';
import * as path from 'node:path';
import type { HttpCache } from '../cache/types';
import { exportHar, type ExportSelection } from './export';
import { HarFormatError, importHar, type ImportReport } from './import';

export interface ExportResult {
  file: string;
  entries: number;
}

/**
 * Writes the selected entries to `file` (through a temp file renamed at the end, so a failed
 * export never leaves half a file under the name), or to `out` (standard output).
 */
export async function exportHarFile(cache: Pick<HttpCache, 'list' | 'read'>, selection: ExportSelection & { redact: boolean }, file: string | NodeJS.WritableStream): Promise<ExportResult> {
  if (typeof file !== 'string') {
    const entries = await exportHar(cache, selection, (chunk) => writeTo(file, chunk));
    return { file: '-', entries };
  }
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.tmp`);
  const out = createWriteStream(tmp, { mode: 0o600 });
  const opened = new Promise<void>((resolve, reject) => out.once('open', () => resolve()).once('error', reject));
  try {
    await opened;
    const entries = await exportHar(cache, selection, (chunk) => writeTo(out, chunk));
    await new Promise<void>((resolve, reject) => out.end((err?: Error | null) => (err ? reject(err) : resolve())));
    await rename(tmp, file);
    return { file, entries };
  } catch (err) {
    out.destroy();
    await unlink(tmp).catch(() => {});
    throw err;
  }
}

function writeTo(out: NodeJS.WritableStream, chunk: string): Promise<void> | void {
  if (out.write(chunk)) return;
  return new Promise((resolve, reject) => {
    const onError = (err: Error) => reject(err);
    out.once('error', onError);
    out.once('drain', () => {
      out.removeListener('error', onError);
      resolve();
    });
  });
}

/** Reads a HAR file and stores its complete GET responses; a malformed file throws HarFormatError and stores nothing. */
export async function importHarFile(cache: Pick<HttpCache, 'storeResponse'>, file: string): Promise<ImportReport> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new HarFormatError(`cannot read ${file}: ${(err as Error).message}`);
  }
  return importHar(cache, text, file);
}

/** The report as lines for a terminal or a log. */
export function describeImport(report: ImportReport): string[] {
  const lines = [`${report.file}: ${report.stored.length} of ${report.entries} ${report.entries === 1 ? 'entry' : 'entries'} stored in the cache${report.replaced ? ` (${report.replaced} replaced by a later entry for the same request)` : ''}`];
  for (const s of report.skipped) lines.push(`  not stored: entry ${s.index} ${s.method} ${s.url}: ${s.reason}`);
  return lines;
}

