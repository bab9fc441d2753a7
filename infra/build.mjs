// Bundles each service's entry point into dist/, so that production runs plain JavaScript on Node
// (no TypeScript loader in memory). Workspace packages (@nondivy/*) are bundled in; every other
// package stays an ordinary import from node_modules. Takes about a second. The `nondivy` CLI is
// bundled apart, with everything inlined (see the end).
import { build } from 'esbuild';

const entries = {
  standalone: 'services/standalone/src/main.ts',
  gateway: 'services/gateway/src/main.ts',
  catalog: 'services/catalog/src/main.ts',
  ftp: 'services/ftp/src/main.ts',
  discovery: 'services/discovery/src/main.ts',
  reindex: 'services/catalog/src/reindex.ts',
  // The catalog's enrichment worker thread, loaded by dist/catalog.mjs and dist/standalone.mjs from beside them.
  'enrich-worker': 'services/catalog/src/enrich-worker.ts',
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

// The `nondivy` CLI (clients/cli): one self-contained file with every dependency inlined (zod,
// bonjour-service…), so that `npm i -g ./clients/cli` needs nothing else. Its CommonJS dependencies
// call `require`, which an ES module lacks: the banner provides one.
await build({
  entryPoints: { nondivy: 'clients/cli/src/main.ts' },
  outdir: 'clients/cli/dist',
  outExtension: { '.js': '.mjs' },
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  logLevel: 'warning',
  banner: { js: "import { createRequire as __nondivyCreateRequire } from 'node:module';\nconst require = __nondivyCreateRequire(import.meta.url);" },
});

// The web app (clients/web) into dist/web, which the gateway serves at `/` (and the image copies
// with the rest of dist/). Vite, with its config beside the app; about two seconds.
const vite = await import('vite');
await vite.build({ configFile: 'clients/web/vite.config.ts', logLevel: 'warn' });
