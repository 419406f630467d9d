import { Button, Center, Container, Group, MantineProvider, Stack } from '@mantine/core';
import { QueryClient, QueryClientProvider } from '@tanstack/react-query';
import { lazy, Suspense, useEffect, useState } from 'react';
import { BrowserRouter, Navigate, Outlet, Route, Routes } from 'react-router';
import { AuthProvider, useAuth } from './api/auth.tsx';
import { ApiError } from './api/http.ts';
import { LiveProvider } from './api/live.tsx';
import { Layout } from './components/layout.tsx';
import { Empty, ErrorState, Loading } from './components/states.tsx';
import { AccountPage, TwoFactorSection } from './pages/account.tsx';
import { ActivityPage } from './pages/activity.tsx';
import { DashboardPage } from './pages/dashboard.tsx';
import { LoginPage } from './pages/login.tsx';
import { NodeDetailPage } from './pages/node-detail.tsx';
import { NodesPage } from './pages/nodes.tsx';
import { ServerCreatePage } from './pages/server-create.tsx';
import { ServersPage } from './pages/servers.tsx';
import { SetupPage } from './pages/setup.tsx';
import { TemplateDetailPage } from './pages/template-detail.tsx';
import { TemplatesPage } from './pages/templates.tsx';
import { UsersPage } from './pages/users.tsx';
import { WebhooksPage } from './pages/webhooks.tsx';
import { theme } from './theme.ts';

// the terminal is the largest dependency and only the server page needs it
const ServerDetailPage = lazy(() =>
  import('./pages/server-detail.tsx').then((m) => ({ default: m.ServerDetailPage })),
);

// the Docker pages (virtual lists, charts, the exec terminal) load when first opened
type DockerModule = typeof import('./pages/docker.tsx');
let dockerModule: DockerModule | null = null;
let dockerLoading: Promise<DockerModule> | null = null;
const loadDocker = () => {
  dockerLoading ??= import('./pages/docker.tsx').then((m) => {
    dockerModule = m;
    return m;
  });
  return dockerLoading;
};
// opened at a Docker address: its code is fetched with the app's, not after the login check
if (typeof window !== 'undefined' && window.location.pathname.startsWith('/docker')) void loadDocker();
/**
 * The Docker page, rendered at once when its code is here (not through React.lazy + Suspense:
 * a boundary that suspended even for a microtask reveals its content no sooner than 300 ms after
 * its fallback, React's throttle, and the page's requests wait for it: that was most of the
 * bench's "first rows" time), else a loading state until it is.
 */
function DockerRoute() {
  const [m, setM] = useState<DockerModule | null>(dockerModule);
  useEffect(() => {
    if (!m) void loadDocker().then(setM);
  }, [m]);
  return m ? <m.DockerPage /> : <Loading label="Loading Docker…" />;
}
const docker = <DockerRoute />;

export function makeQueryClient(): QueryClient {
  return new QueryClient({
    defaultOptions: {
      queries: {
        staleTime: 5_000,
        // a 4xx will not get better by asking again
        retry: (n, e) => n < 2 && !(e instanceof ApiError && e.status >= 400 && e.status < 500),
      },
    },
  });
}

/** Everything behind login: the live socket only exists while signed in. */
function Protected() {
  const { user, loading, error, setupRequired, twoFactor, logout } = useAuth();
  if (loading)
    return (
      <Center mih="100vh">
        <Loading label="Connecting to the Panel…" />
      </Center>
    );
  if (error)
    return (
      <Center mih="100vh" p="md">
        <ErrorState
          error={error}
          title="The Panel is not answering"
          onRetry={() => window.location.reload()}
        />
      </Center>
    );
  if (setupRequired) return <Navigate to="/setup" replace />;
  if (!user) return <Navigate to="/login" replace />;
  // PANEL_REQUIRE_2FA_FOR_ADMINS: nothing else until it is on (the Panel refuses the rest)
  if (twoFactor.required && !twoFactor.enabled)
    return (
      <Container size="sm" py="xl" data-testid="must-enrol">
        <Stack>
          <TwoFactorSection />
          <Group>
            <Button variant="default" onClick={() => void logout()}>
              Log out
            </Button>
          </Group>
        </Stack>
      </Container>
    );
  return (
    <LiveProvider>
      <Outlet />
    </LiveProvider>
  );
}

function AdminOnly() {
  const { canWrite } = useAuth();
  return canWrite ? <Outlet /> : <Empty title="Admins only">Your role cannot see this page.</Empty>;
}

export function App({ client }: { client: QueryClient }) {
  return (
    <MantineProvider theme={theme} defaultColorScheme="dark">
      <QueryClientProvider client={client}>
        <BrowserRouter>
          <AuthProvider>
            <Routes>
              <Route path="/login" element={<LoginPage />} />
              <Route path="/setup" element={<SetupPage />} />
              <Route element={<Protected />}>
                <Route element={<Layout />}>
                  <Route index element={<DashboardPage />} />
                  <Route path="servers" element={<ServersPage />} />
                  <Route
                    path="servers/:id"
                    element={
                      <Suspense fallback={<Loading label="Loading server…" />}>
                        <ServerDetailPage />
                      </Suspense>
                    }
                  />
                  <Route path="nodes" element={<NodesPage />} />
                  <Route path="nodes/:id" element={<NodeDetailPage />} />
                  <Route path="docker" element={docker} />
                  <Route path="docker/:nodeId" element={docker} />
                  <Route path="docker/:nodeId/:section" element={docker} />
                  <Route path="docker/:nodeId/containers/:containerId" element={docker} />
                  <Route path="templates" element={<TemplatesPage />} />
                  <Route path="templates/:id" element={<TemplateDetailPage />} />
                  <Route path="account" element={<AccountPage />} />
                  <Route element={<AdminOnly />}>
                    <Route path="servers/new" element={<ServerCreatePage />} />
                    <Route path="users" element={<UsersPage />} />
                    <Route path="activity" element={<ActivityPage />} />
                    <Route path="webhooks" element={<WebhooksPage />} />
                  </Route>
                  <Route
                    path="*"
                    element={<Empty title="Page not found">Use the navigation on the left.</Empty>}
                  />
                </Route>
              </Route>
            </Routes>
          </AuthProvider>
        </BrowserRouter>
      </QueryClientProvider>
    </MantineProvider>
  );
}
