import { fileURLToPath } from 'node:url';

/** Where `npm run build -w packages/web` writes the app; the Panel serves it at `/`. */
export const webDistDir: string = fileURLToPath(new URL('../dist', import.meta.url));
