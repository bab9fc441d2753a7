// Bundles each service's entry point into dist/, so that production runs plain JavaScript on Node
// (no TypeScript loader in memory). Workspace packages (@nondivy/*) are bundled in; every other
// package stays an ordinary import from node_modules. Takes about a second.
import { build } from 'esbuild';

const entries = {
  standalone: 'services/standalone/src/main.ts',
  gateway: 'services/gateway/src/main.ts',
  catalog: 'services/catalog/src/main.ts',
  ftp: 'services/ftp/src/main.ts',
  discovery: 'services/discovery/src/main.ts',
  reindex: 'services/catalog/src/reindex.ts',
};

await build({
  entryPoints: entries,
  outdir: 'dist',
  outExtension: { '.js': '.mjs' },
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  sourcemap: 'linked',
  logLevel: 'warning',
  plugins: [
    {
      name: 'externalize-third-party',
      setup(b) {
        b.onResolve({ filter: /^[^./]/ }, (args) => (args.path.startsWith('@nondivy/') ? undefined : { path: args.path, external: true }));
      },
    },
  ],
});
