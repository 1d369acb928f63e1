import * as os from 'node:os';
import * as path from 'node:path';
import * as vscode from 'vscode';
import type { CacheNode } from '../cachedUrlsTree';
import type { CommandGroup, ExtensionParts } from './command';

const HAR_FILTERS = { 'HTTP Archive (HAR)': ['har'], 'All files': ['*'] };

const plural = (n: number, one: string, many: string) => `${n} ${n === 1 ? one : many}`;

/** A file the proxy process can open: from a command argument, else from a dialog. */
async function pickFile(given: unknown, dialog: () => Thenable<vscode.Uri | undefined>, output: ExtensionParts['output']): Promise<string | undefined> {
  const uri = given instanceof vscode.Uri ? given : await dialog();
  if (!uri) return undefined;
  if (uri.scheme !== 'file' && uri.scheme !== 'vscode-remote') {
    void output.notify('error', `Caching Proxy: ${uri.toString()} is not a file on this machine; choose a local file.`);
    return undefined;
  }
  return uri.fsPath;
}

/** Start/Stop Recording, Export Cache as HAR… (all, a host or a URL), Import HAR…. The files are read and written by the proxy process. */
export const harCommands: CommandGroup = (parts) => {
  const { proxy, output, view, register } = parts;
  const controller = proxy.controller;
  let recording: string | null = null;

  const showRecording = (file: string | null) => {
    recording = file;
    proxy.statusBar.setRecording(file);
    void vscode.commands.executeCommand('setContext', 'cachingProxy.recording', file !== null);
  };
  // The proxy process ends its recording when it stops (the file is complete then).
  register(proxy.onDidChangeState(() => controller.state !== 'running' && recording !== null && showRecording(null)));

  const defaultUri = (name: string) => {
    const folder = proxy.settings?.recordFolder || vscode.workspace.workspaceFolders?.[0]?.uri.fsPath || os.homedir();
    return vscode.Uri.file(path.join(folder, name));
  };
  const stamp = () => new Date().toISOString().slice(0, 19).replace(/:/g, '-');
  const failed = (what: string, err: unknown) => {
    const message = `Caching Proxy: ${what}: ${(err as Error).message}`;
    output.log('error', message);
    void output.notify('error', message);
  };

  const exportHar = async (node?: CacheNode | vscode.Uri, target?: vscode.Uri) => {
    if (!proxy.requireRunning()) return;
    const uriGiven = node instanceof vscode.Uri ? node : target;
    const tree = node instanceof vscode.Uri ? undefined : node;
    const selection = tree?.kind === 'entry' ? { key: tree.entry.key } : tree?.kind === 'host' ? { host: tree.host } : {};
    const what = tree?.kind === 'entry' ? tree.entry.url : tree?.kind === 'host' ? tree.host : 'the cache';
    const base = tree?.kind === 'host' ? tree.host.replace(/[^\w.-]+/g, '_') : tree?.kind === 'entry' ? 'response' : 'cache';
    const file = await pickFile(uriGiven, () => vscode.window.showSaveDialog({ title: `Export ${what} as HAR`, defaultUri: defaultUri(`${base}-${stamp()}.har`), filters: HAR_FILTERS, saveLabel: 'Export' }), output);
    if (!file) return;
    try {
      const result = await controller.query({ op: 'exportHar', file, ...selection });
      output.log('info', `exported ${plural(result.entries, 'response', 'responses')} of ${what} to ${result.file}`);
      void output.notify('info', `Caching Proxy: exported ${plural(result.entries, 'stored response', 'stored responses')} to ${result.file}.`);
    } catch (err) {
      failed('export failed', err);
    }
  };

  return [
    {
      id: 'cachingProxy.startRecording',
      run: async (target?: vscode.Uri) => {
        if (!proxy.requireRunning()) return;
        const file = await pickFile(target, () => vscode.window.showSaveDialog({ title: 'Record every exchange to a HAR file', defaultUri: defaultUri(`recording-${stamp()}.har`), filters: HAR_FILTERS, saveLabel: 'Record' }), output);
        if (!file) return;
        try {
          // The save dialog asked before replacing a file; an argument names a file to (re)write as well.
          const state = await controller.query({ op: 'startRecording', file, overwrite: true });
          showRecording(state.file);
          void output.notify('info', `Caching Proxy: recording every exchange to ${state.file}.`, 'Stop Recording').then((c) => {
            if (c) void vscode.commands.executeCommand('cachingProxy.stopRecording');
          });
        } catch (err) {
          failed('cannot record', err);
        }
      },
    },
    {
      id: 'cachingProxy.stopRecording',
      run: async () => {
        if (controller.state !== 'running') return showRecording(null);
        try {
          const state = await controller.query({ op: 'stopRecording' });
          showRecording(null);
          if (!state) {
            void output.notify('info', 'Caching Proxy is not recording.');
            return;
          }
          void output.notify('info', `Caching Proxy: recorded ${plural(state.entries, 'exchange', 'exchanges')} to ${state.file}.`, 'Open File').then((c) => {
            if (c) void vscode.window.showTextDocument(vscode.Uri.file(state.file));
          });
        } catch (err) {
          failed('stopping the recording failed', err);
        }
      },
    },
    { id: 'cachingProxy.exportHar', run: (arg?: vscode.Uri) => exportHar(arg) },
    { id: 'cachingProxy.exportNodeHar', run: (node?: CacheNode, target?: vscode.Uri) => exportHar(node ?? view.treeView.selection[0], target) },
    {
      id: 'cachingProxy.importHar',
      run: async (source?: vscode.Uri) => {
        if (!proxy.requireRunning()) return;
        const file = await pickFile(
          source,
          async () => (await vscode.window.showOpenDialog({ title: 'Import a HAR file into the cache', canSelectMany: false, filters: HAR_FILTERS, openLabel: 'Import', defaultUri: defaultUri('') }))?.[0],
          output,
        );
        if (!file) return;
        try {
          const report = await controller.query({ op: 'importHar', file });
          view.tree.refresh();
          output.log('info', `imported ${report.stored.length} of ${plural(report.entries, 'entry', 'entries')} from ${file}`);
          for (const s of report.skipped) output.log('info', `  not stored: entry ${s.index} ${s.method} ${s.url}: ${s.reason}`);
          const skipped = report.skipped.length ? ` ${report.skipped.length} not stored (see the log).` : '';
          void output.notify('info', `Caching Proxy: imported ${report.stored.length} of ${plural(report.entries, 'entry', 'entries')} from ${file}${report.replaced ? ` (${report.replaced} replaced by a later entry for the same request)` : ''}.${skipped}`, ...(skipped ? ['Show Log'] : [])).then((c) => {
            if (c) output.showLog();
          });
        } catch (err) {
          failed('import failed', err);
        }
      },
    },
  ];
};
