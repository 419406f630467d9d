import { Alert, AppShell, Badge, Burger, Button, Group, NavLink, Text, Title } from '@mantine/core';
import { useDisclosure } from '@mantine/hooks';
import { useQueryClient } from '@tanstack/react-query';
import { useEffect, useState } from 'react';
import { Outlet, NavLink as RouterNavLink, useLocation, useNavigate } from 'react-router';
import { useAuth } from '../api/auth.tsx';
import { useDockerNodes } from '../api/docker.ts';
import { useLive, useLiveMessages, useLiveState } from '../api/live.tsx';
import { applyLiveMessage } from '../api/queries.ts';

const links = [
  { to: '/', label: 'Dashboard', end: true },
  { to: '/servers', label: 'Servers', end: false },
  { to: '/nodes', label: 'Nodes', end: false },
  { to: '/templates', label: 'Templates', end: false },
];

function ReconnectBanner() {
  const state = useLiveState();
  const live = useLive();
  // re-render twice a second for the countdown; the time itself is read at render
  const [, setTick] = useState(0);
  useEffect(() => {
    if (state !== 'reconnecting') return;
    const t = setInterval(() => setTick((n) => n + 1), 500);
    return () => clearInterval(t);
  }, [state]);
  if (state !== 'reconnecting') return null;
  const secs = Math.max(0, Math.ceil((live.nextRetryAt - Date.now()) / 1000));
  return (
    <Alert color="orange" variant="filled" radius={0} py={6} role="status" data-testid="reconnect-banner">
      <Text size="sm" fw={600}>
        Disconnected — reconnecting{secs > 0 ? ` in ${secs}s` : '…'}. Live data is paused; what you see may be
        out of date.
      </Text>
    </Alert>
  );
}

/** Patches the query cache from live messages, for every page at once. */
function LiveCacheSync() {
  const qc = useQueryClient();
  useLiveMessages((m) => applyLiveMessage(qc, m));
  return null;
}

export function Layout() {
  const [opened, { toggle, close }] = useDisclosure();
  const { user, logout, canWrite, seesPanel } = useAuth();
  const navigate = useNavigate();
  const location = useLocation();
  // a `user` with a docker.read / docker.write grant on a node sees Docker too
  const dockerNodes = useDockerNodes(user !== null && !seesPanel);
  const seesDocker = seesPanel || (dockerNodes.data?.length ?? 0) > 0;
  // biome-ignore lint/correctness/useExhaustiveDependencies: close the mobile menu on navigation
  useEffect(() => close(), [location.pathname]);

  const all = [
    // a `user` sees its servers only: no nodes
    ...links.filter((l) => seesPanel || l.to !== '/nodes'),
    // each node's Docker Engine (the Panel checks docker.read / docker.write per node)
    ...(seesDocker ? [{ to: '/docker', label: 'Docker', end: false }] : []),
    ...(canWrite
      ? [
          { to: '/users', label: 'Users', end: false },
          { to: '/activity', label: 'Activity', end: false },
          { to: '/webhooks', label: 'Webhooks', end: false },
        ]
      : []),
    { to: '/account', label: 'Account', end: false },
  ];
  return (
    <AppShell
      header={{ height: 56 }}
      navbar={{ width: 220, breakpoint: 'sm', collapsed: { mobile: !opened } }}
      padding="md"
    >
      <LiveCacheSync />
      <AppShell.Header className="cap-shell-header">
        <Group h="100%" px="md" justify="space-between" wrap="nowrap">
          <Group gap="sm" wrap="nowrap">
            <Burger
              opened={opened}
              onClick={toggle}
              hiddenFrom="sm"
              size="sm"
              aria-label="Toggle navigation"
            />
            <Title order={3} size="h4" c="cyan.3" style={{ letterSpacing: '0.04em' }}>
              Ctrl‑Alt‑Play
            </Title>
          </Group>
          <Group gap="sm" wrap="nowrap">
            <Text size="sm" c="dimmed" visibleFrom="xs" data-testid="current-user">
              {user?.email}
            </Text>
            <Badge variant="outline" color="cyan" visibleFrom="xs">
              {user?.role}
            </Badge>
            <Button
              size="xs"
              variant="subtle"
              onClick={() => {
                // signed out locally even when the Panel cannot be told
                void logout()
                  .catch(() => undefined)
                  .finally(() => navigate('/login'));
              }}
              data-testid="logout"
            >
              Log out
            </Button>
          </Group>
        </Group>
      </AppShell.Header>
      <AppShell.Navbar p="sm" className="cap-shell-navbar" aria-label="Main navigation">
        {all.map((l) => (
          <NavLink
            key={l.to}
            component={RouterNavLink}
            to={l.to}
            end={l.end}
            label={l.label}
            active={l.end ? location.pathname === l.to : location.pathname.startsWith(l.to)}
            variant="light"
          />
        ))}
      </AppShell.Navbar>
      <AppShell.Main>
        <ReconnectBanner />
        <div style={{ paddingTop: 8 }}>
          <Outlet />
        </div>
      </AppShell.Main>
    </AppShell>
  );
}
