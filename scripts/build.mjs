// Bundles each entry point into dist/ (CommonJS, Node 20). `vscode` is provided by the editor.
import { build } from 'esbuild';
import { chmod, readFile } from 'node:fs/promises';

const watch = process.argv.includes('--watch');
const common = {
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'cjs',
  sourcemap: true,
  logLevel: 'warning',
  external: ['vscode'],
  define: { __VERSION__: JSON.stringify(JSON.parse(await readFile('package.json', 'utf8')).version) },
};
const entries = [
  { in: 'src/cli.ts', out: 'dist/cli.js', banner: { js: '#!/usr/bin/env node' } },
  { in: 'src/extension/extension.ts', out: 'dist/extension.js' },
];
import { existsSync } from 'node:fs';
for (const entry of entries) {
  if (!existsSync(entry.in)) continue;
  await build({ ...common, entryPoints: [entry.in], outfile: entry.out, banner: entry.banner });
}
await chmod('dist/cli.js', 0o755).catch(() => {});
if (watch) console.log('watch mode is not supported; run npm run build');
