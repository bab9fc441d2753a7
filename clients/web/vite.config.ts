import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';

const here = (p: string) => fileURLToPath(new URL(p, import.meta.url));

/**
 * Builds the web app into dist/web of the repository, which the gateway serves at `/`. Preact's JSX
 * through Vite's own transformer (no plugin); no inline scripts, no data: URLs for assets (the
 * page's CSP allows neither); hashed file names under assets/ (cached for a year by the gateway).
 * `vite` (dev) proxies the API to a server on :8080.
 */
export default defineConfig({
  root: here('.'),
  base: '/',
  publicDir: here('public'),
  oxc: { jsx: { runtime: 'automatic', importSource: 'preact' } },
  build: {
    outDir: here('../../dist/web'),
    emptyOutDir: true,
    target: 'es2020',
    sourcemap: false,
    assetsInlineLimit: 0,
    modulePreload: { polyfill: false },
    reportCompressedSize: false,
  },
  server: { proxy: { '/api': 'http://127.0.0.1:8080' } },
});
