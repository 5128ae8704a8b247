/// <reference types="vitest" />
import { defineConfig } from 'vite';
import react from '@vitejs/plugin-react';
import type { Plugin } from 'vite';

// CodeMirror's styles go through style-mod, which writes a <style> element
// into a document (constructable stylesheets only for shadow roots). The
// console is served with `Content-Security-Policy: default-src 'self'`
// (no 'unsafe-inline'), which blocks that element and leaves the editor
// unstyled. Constructable stylesheets (document.adoptedStyleSheets) are
// CSSOM, which CSP allows: use them for documents too. The build fails if
// a new style-mod no longer has the line, rather than ship a broken editor.
function styleModAdopted(): Plugin {
  const from = 'if (!root.head && root.adoptedStyleSheets && win.CSSStyleSheet) {';
  const to = 'if (root.adoptedStyleSheets && win.CSSStyleSheet) {';
  return {
    name: 'schnitzel-style-mod-adopted',
    enforce: 'pre',
    transform(code, id) {
      if (!id.includes('/node_modules/style-mod/')) return null;
      if (!code.includes(from)) {
        if (code.includes(to)) return null;
        this.error('style-mod changed: cannot switch it to adoptedStyleSheets (see vite.config.ts)');
      }
      return { code: code.replace(from, to), map: null };
    },
  };
}

const api = 'http://127.0.0.1:18700';

// The bundle is committed and CI rebuilds it and compares: the output must
// be byte-identical for the same input (content-hashed names, no source
// maps with absolute paths, no timestamps).
export default defineConfig({
  base: '/',
  plugins: [react(), styleModAdopted()],
  build: {
    outDir: '../internal/serve/console/dist',
    emptyOutDir: true,
    sourcemap: false,
    target: 'es2020',
    modulePreload: { polyfill: false },
    chunkSizeWarningLimit: 1500,
    rollupOptions: {
      output: {
        // Stable, readable chunk names: the canvas, the code editor, YAML.
        manualChunks(id: string) {
          if (id.includes('/node_modules/@xyflow/') || id.includes('/node_modules/@dagrejs/') || id.includes('/node_modules/d3-')) return 'flow';
          if (id.includes('/node_modules/@codemirror/') || id.includes('/node_modules/@lezer/') || id.includes('/node_modules/codemirror/') || id.includes('/node_modules/style-mod/') || id.includes('/node_modules/w3c-keyname/') || id.includes('/node_modules/crelt/'))
            return 'codemirror';
          if (id.includes('/node_modules/yaml/')) return 'yaml';
          if (id.includes('/node_modules/react/') || id.includes('/node_modules/react-dom/') || id.includes('/node_modules/scheduler/')) return 'react';
          return undefined;
        },
        entryFileNames: 'assets/[name]-[hash].js',
        chunkFileNames: 'assets/[name]-[hash].js',
        assetFileNames: 'assets/[name]-[hash][extname]',
      },
    },
  },
  server: {
    host: '127.0.0.1',
    port: 5173,
    proxy: {
      '/api': { target: api },
      '/login': { target: api },
      '/logout': { target: api },
      '/metrics': { target: api },
    },
  },
  // `vite preview` with the headers schnitzel serve sends: a CSP violation
  // shows up here before it does in the Go tests.
  preview: {
    host: '127.0.0.1',
    port: 4173,
    headers: {
      'Content-Security-Policy':
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'self'; form-action 'self'",
      'X-Frame-Options': 'DENY',
    },
  },
  test: {
    environment: 'node',
    include: ['src/**/*.test.ts'],
  },
});
