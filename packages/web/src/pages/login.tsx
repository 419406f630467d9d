import { Button, Center, Paper, PasswordInput, Stack, Text, TextInput, Title } from '@mantine/core';
import { type FormEvent, useState } from 'react';
import { Navigate, useNavigate } from 'react-router';
import { useAuth } from '../api/auth.tsx';
import { ErrorState, Loading } from '../components/states.tsx';

export function LoginPage() {
  const { login, user, setupRequired, loading } = useAuth();
  const navigate = useNavigate();
  const [email, setEmail] = useState('');
  const [password, setPassword] = useState('');
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  if (loading) return <Loading label="Connecting to the Panel…" />;
  if (setupRequired) return <Navigate to="/setup" replace />;
  if (user) return <Navigate to="/" replace />;

  async function submit(e: FormEvent) {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      await login(email, password);
      navigate('/');
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  }

  return (
    <Center mih="100vh" p="md">
      <Paper className="cap-glass" p="xl" w={380} maw="100%">
        <form onSubmit={submit} aria-label="Log in">
          <Stack>
            <Title order={2} c="cyan.3">
              Ctrl‑Alt‑Play
            </Title>
            <Text c="dimmed" size="sm">
              Log in to the Panel.
            </Text>
            <TextInput
              label="Email"
              type="email"
              autoComplete="username"
              required
              value={email}
              onChange={(e) => setEmail(e.currentTarget.value)}
              data-testid="login-email"
              autoFocus
            />
            <PasswordInput
              label="Password"
              autoComplete="current-password"
              required
              value={password}
              onChange={(e) => setPassword(e.currentTarget.value)}
              data-testid="login-password"
            />
            {error ? <ErrorState error={error} title="Login failed" /> : null}
            <Button type="submit" loading={busy} data-testid="login-submit">
              Log in
            </Button>
          </Stack>
        </form>
      </Paper>
    </Center>
  );
}
