/// <reference types="vitest" />
import { defineConfig } from 'vite';
import react from '@vitejs/plugin-react';

const api = 'http://127.0.0.1:18700';

// The bundle is committed and CI rebuilds it and compares: the output must
// be byte-identical for the same input (content-hashed names, no source
// maps with absolute paths, no timestamps).
export default defineConfig({
  base: '/',
  plugins: [react()],
  build: {
    outDir: '../internal/serve/console/dist',
    emptyOutDir: true,
    sourcemap: false,
    target: 'es2020',
    modulePreload: { polyfill: false },
    chunkSizeWarningLimit: 1500,
    rollupOptions: {
      output: {
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
  test: {
    environment: 'node',
    include: ['src/**/*.test.ts'],
  },
});
