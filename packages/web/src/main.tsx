import '@mantine/core/styles.css';
import './styles.css';
import { StrictMode } from 'react';
import { createRoot } from 'react-dom/client';
import { prefetchSession } from './api/auth.tsx';
import { prefetchDockerList } from './api/docker.ts';
import { App, makeQueryClient } from './app.tsx';

const root = document.getElementById('root');
if (!root) throw new Error('#root is missing from index.html');
const client = makeQueryClient();
// the login check and a Docker list's requests go now, side by side, not one after the other
// once React has rendered (bench/docker-list.ts: first rows)
prefetchSession(client);
prefetchDockerList(client, window.location.pathname);
createRoot(root).render(
  <StrictMode>
    <App client={client} />
  </StrictMode>,
);
