import * as vscode from 'vscode';
import type { CacheNode } from '../cachedUrlsTree';
import { StoredResponseDocuments } from '../entryDocument';
import { curlCommand, describeEntry } from '../format';
import type { CommandGroup } from './command';

/** The Cached URLs view: its title bar (refresh, filter) and the actions on a host or URL. */
export const treeCommands: CommandGroup = ({ proxy, output, view }) => {
  const controller = proxy.controller;
  return [
    { id: 'cachingProxy.refresh', run: () => view.tree.refresh() },
    {
      id: 'cachingProxy.filter',
      run: async () => {
        const text = await vscode.window.showInputBox({ title: 'Filter Cached URLs', prompt: 'Show URLs containing this text (empty shows all)', value: view.tree.filter });
        if (text !== undefined) view.applyFilter(text);
      },
    },
    { id: 'cachingProxy.clearFilter', run: () => view.applyFilter('') },
    {
      id: 'cachingProxy.openEntry',
      run: async (node?: CacheNode) => {
        const entry = view.entryOf(node);
        if (!entry) return;
        let doc = await vscode.workspace.openTextDocument(StoredResponseDocuments.uriFor(entry.entry));
        // The status line and headers above the body are not valid JSON/HTML: no language diagnostics.
        if (doc.languageId !== 'plaintext') doc = await vscode.languages.setTextDocumentLanguage(doc, 'plaintext');
        await vscode.window.showTextDocument(doc, { preview: true });
      },
    },
    {
      id: 'cachingProxy.revalidateEntry',
      run: async (node?: CacheNode) => {
        const entry = view.entryOf(node);
        if (!entry || !proxy.requireRunning()) return;
        const summary = await controller.query({ op: 'revalidate', key: entry.entry.key });
        view.tree.refresh();
        view.documents.reload(StoredResponseDocuments.uriFor(entry.entry));
        if (summary) void output.notify('info', `Revalidated ${entry.entry.url}: ${describeEntry(summary)}`);
        else void output.notify('warning', `${entry.entry.url} is no longer cached.`);
      },
    },
    {
      id: 'cachingProxy.purgeEntry',
      run: async (node?: CacheNode) => {
        const entry = view.entryOf(node);
        if (!entry || !proxy.requireRunning()) return;
        await controller.query({ op: 'purge', key: entry.entry.key });
        view.tree.refresh();
      },
    },
    {
      id: 'cachingProxy.purgeHost',
      run: async (node?: CacheNode) => {
        const host = view.hostOf(node);
        if (!host || !proxy.requireRunning()) return;
        const count = await controller.query({ op: 'purgeHost', host });
        view.tree.refresh();
        void output.notify('info', `Caching Proxy: purged ${count} stored ${count === 1 ? 'response' : 'responses'} of ${host}.`);
      },
    },
    {
      id: 'cachingProxy.copyEntryUrl',
      run: async (node?: CacheNode) => {
        const entry = view.entryOf(node);
        if (entry) await vscode.env.clipboard.writeText(entry.entry.url);
      },
    },
    {
      id: 'cachingProxy.copyAsCurl',
      run: async (node?: CacheNode) => {
        const entry = view.entryOf(node);
        const config = proxy.settings?.config;
        const proxyUrl = controller.address?.url ?? `http://${config?.host ?? '127.0.0.1'}:${config?.port ?? 8899}`;
        if (entry) await vscode.env.clipboard.writeText(curlCommand(entry.entry, proxyUrl));
      },
    },
  ];
};
