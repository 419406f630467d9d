import react from '@vitejs/plugin-react';
import { defineConfig } from 'vite';

// The Panel serves dist/ at `/`; in development Vite proxies the API and the live socket to it.
const panel = process.env['CAP_PANEL_URL'] ?? 'http://127.0.0.1:8080';

export default defineConfig({
  plugins: [react()],
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    // the charting, terminal and component libraries are large by nature; split them, do not warn
    chunkSizeWarningLimit: 1500,
    rolldownOptions: {
      output: {
        codeSplitting: {
          groups: [
            { name: 'xterm', test: /node_modules[\\/]@xterm/ },
            {
              name: 'charts',
              test: /node_modules[\\/](recharts|d3-|victory|es-toolkit|immer|redux|reselect)/,
            },
            { name: 'mantine', test: /node_modules[\\/]@mantine/ },
            { name: 'react', test: /node_modules[\\/](react|react-dom|react-router|scheduler)[\\/]/ },
          ],
        },
      },
    },
  },
  server: {
    proxy: {
      '/api': { target: panel, changeOrigin: false },
      '/ws': { target: panel.replace(/^http/, 'ws'), ws: true },
    },
  },
});
