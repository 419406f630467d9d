import { Button, Center, Code, Paper, PasswordInput, Stack, Text, TextInput, Title } from '@mantine/core';
import { type FormEvent, useState } from 'react';
import { Navigate, useNavigate, useSearchParams } from 'react-router';
import { useAuth } from '../api/auth.tsx';
import { ErrorState, Loading } from '../components/states.tsx';

/** First run: the Panel printed a one-time setup token in its log; it creates the first owner. */
export function SetupPage() {
  const { setup, setupRequired, loading } = useAuth();
  const navigate = useNavigate();
  // the Panel prints a link with the token in it: /setup?token=…
  const [params] = useSearchParams();
  const [token, setToken] = useState(() => params.get('token') ?? '');
  const [email, setEmail] = useState('');
  const [password, setPassword] = useState('');
  const [confirm, setConfirm] = useState('');
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  if (loading) return <Loading label="Connecting to the Panel…" />;
  if (!setupRequired) return <Navigate to="/login" replace />;
  const mismatch = confirm.length > 0 && confirm !== password;
  const short = password.length > 0 && password.length < 8;

  async function submit(e: FormEvent) {
    e.preventDefault();
    if (mismatch || short) return;
    setBusy(true);
    setError(null);
    try {
      await setup(token.trim(), email, password);
      navigate('/');
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  }

  return (
    <Center mih="100vh" p="md">
      <Paper className="cap-glass" p="xl" w={440} maw="100%">
        <form onSubmit={submit} aria-label="First-run setup">
          <Stack>
            <Title order={2} c="cyan.3">
              Welcome to Ctrl‑Alt‑Play
            </Title>
            <Text size="sm" c="dimmed">
              Create the owner account. The Panel printed a one-time link with the setup token in its log when
              it started (<Code>/setup?token=…</Code>); opening that link fills the token in.
            </Text>
            <TextInput
              label="Setup token"
              required
              value={token}
              onChange={(e) => setToken(e.currentTarget.value)}
              data-testid="setup-token"
            />
            <TextInput
              label="Owner email"
              type="email"
              required
              autoComplete="username"
              value={email}
              onChange={(e) => setEmail(e.currentTarget.value)}
              data-testid="setup-email"
            />
            <PasswordInput
              label="Password"
              description="At least 8 characters"
              required
              autoComplete="new-password"
              value={password}
              error={short ? 'At least 8 characters' : undefined}
              onChange={(e) => setPassword(e.currentTarget.value)}
              data-testid="setup-password"
            />
            <PasswordInput
              label="Repeat password"
              required
              autoComplete="new-password"
              value={confirm}
              error={mismatch ? 'Passwords differ' : undefined}
              onChange={(e) => setConfirm(e.currentTarget.value)}
              data-testid="setup-confirm"
            />
            {error ? <ErrorState error={error} title="Setup failed" /> : null}
            <Button type="submit" loading={busy} data-testid="setup-submit">
              Create owner and log in
            </Button>
          </Stack>
        </form>
      </Paper>
    </Center>
  );
}
