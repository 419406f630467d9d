import {
  Anchor,
  Button,
  Center,
  Group,
  Paper,
  PasswordInput,
  Stack,
  Text,
  TextInput,
  Title,
} from '@mantine/core';
import { type FormEvent, useState } from 'react';
import { Navigate, useNavigate } from 'react-router';
import { useAuth } from '../api/auth.tsx';
import { ErrorState, Loading } from '../components/states.tsx';

/** The second step: the authenticator's 6-digit code, or one recovery code. */
function CodeStep({ ticket, onRestart }: { ticket: string; onRestart(): void }) {
  const { loginSecondFactor } = useAuth();
  const navigate = useNavigate();
  const [useRecovery, setUseRecovery] = useState(false);
  const [code, setCode] = useState('');
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const clean = useRecovery ? code.trim() : code.replace(/\s/g, '');
  const valid = useRecovery ? clean.length >= 8 : /^\d{6}$/.test(clean);

  async function submit(e: FormEvent) {
    e.preventDefault();
    if (!valid) return;
    setBusy(true);
    setError(null);
    try {
      await loginSecondFactor(ticket, useRecovery ? { recoveryCode: clean } : { code: clean });
      navigate('/');
    } catch (err) {
      setError(err);
      setCode('');
    } finally {
      setBusy(false);
    }
  }

  return (
    <form onSubmit={submit} aria-label="Two-factor code">
      <Stack>
        <Title order={2} c="cyan.3">
          Two-factor code
        </Title>
        <Text c="dimmed" size="sm">
          {useRecovery
            ? 'Enter one of your recovery codes. Each works once.'
            : 'Enter the 6-digit code from your authenticator app.'}
        </Text>
        <TextInput
          label={useRecovery ? 'Recovery code' : 'Code'}
          autoComplete="one-time-code"
          inputMode={useRecovery ? 'text' : 'numeric'}
          required
          value={code}
          onChange={(e) => setCode(e.currentTarget.value)}
          data-testid="login-code"
          autoFocus
        />
        {error ? <ErrorState error={error} title="The code was not accepted" /> : null}
        <Button type="submit" loading={busy} disabled={!valid} data-testid="login-code-submit">
          Verify
        </Button>
        <Group justify="space-between">
          <Anchor
            component="button"
            type="button"
            size="sm"
            onClick={() => {
              setUseRecovery(!useRecovery);
              setCode('');
            }}
            data-testid="login-use-recovery"
          >
            {useRecovery ? 'Use the authenticator code' : 'Use a recovery code'}
          </Anchor>
          <Anchor component="button" type="button" size="sm" onClick={onRestart}>
            Start over
          </Anchor>
        </Group>
      </Stack>
    </form>
  );
}

export function LoginPage() {
  const { login, user, setupRequired, loading } = useAuth();
  const navigate = useNavigate();
  const [email, setEmail] = useState('');
  const [password, setPassword] = useState('');
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const [ticket, setTicket] = useState<string | null>(null);
  if (loading) return <Loading label="Connecting to the Panel…" />;
  if (setupRequired) return <Navigate to="/setup" replace />;
  if (user) return <Navigate to="/" replace />;

  async function submit(e: FormEvent) {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const next = await login(email, password);
      setPassword('');
      if (next) setTicket(next.ticket);
      else navigate('/');
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  }

  if (ticket)
    return (
      <Center mih="100vh" p="md">
        <Paper className="cap-glass" p="xl" w={380} maw="100%">
          <CodeStep ticket={ticket} onRestart={() => setTicket(null)} />
        </Paper>
      </Center>
    );

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
