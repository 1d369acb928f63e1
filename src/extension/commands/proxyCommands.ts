import * as vscode from 'vscode';
import type { CommandGroup } from './command';

/** Start, stop, restart, the whole cache, the proxy's URL, log, settings and the status bar's quick pick. */
export const proxyCommands: CommandGroup = ({ context, proxy, output, view }) => {
  const controller = proxy.controller;
  return [
    { id: 'cachingProxy.start', run: () => proxy.start() },
    { id: 'cachingProxy.stop', run: () => proxy.stop() },
    {
      id: 'cachingProxy.restart',
      run: async () => {
        await proxy.stop();
        await proxy.start();
      },
    },
    {
      id: 'cachingProxy.clearCache',
      run: async () => {
        if (!proxy.requireRunning()) return;
        const count = await controller.query({ op: 'purgeAll' });
        view.tree.refresh();
        void output.notify('info', `Caching Proxy: cleared ${count} stored ${count === 1 ? 'response' : 'responses'}.`);
      },
    },
    {
      id: 'cachingProxy.copyProxyUrl',
      run: async () => {
        const url = controller.address?.url;
        if (!url || !proxy.requireRunning()) return;
        await vscode.env.clipboard.writeText(url);
        void output.notify('info', `Copied ${url}`);
      },
    },
    { id: 'cachingProxy.showLog', run: () => output.showLog() },
    {
      id: 'cachingProxy.showActions',
      run: async () => {
        const running = controller.state === 'running';
        const items: (vscode.QuickPickItem & { command: string })[] = running
          ? [
              { label: '$(debug-stop) Stop Proxy', command: 'cachingProxy.stop', description: controller.address?.url },
              { label: '$(debug-restart) Restart Proxy', command: 'cachingProxy.restart' },
              { label: '$(copy) Copy Proxy URL', command: 'cachingProxy.copyProxyUrl' },
              { label: '$(clear-all) Clear Cache', command: 'cachingProxy.clearCache' },
            ]
          : [{ label: '$(play) Start Proxy', command: 'cachingProxy.start' }];
        items.push(
          { label: '$(list-tree) Show Cached URLs', command: 'cachingProxy.cachedUrls.focus' },
          { label: '$(output) Show Log', command: 'cachingProxy.showLog' },
          { label: '$(settings-gear) Open Settings', command: 'cachingProxy.openSettings' },
        );
        const picked = await vscode.window.showQuickPick(items, { title: 'Caching Proxy', placeHolder: running ? `Listening on ${controller.address?.url}` : 'Stopped' });
        if (picked) await vscode.commands.executeCommand(picked.command);
      },
    },
    { id: 'cachingProxy.openSettings', run: () => vscode.commands.executeCommand('workbench.action.openSettings', `@ext:${context.extension.id}`) },
  ];
};
