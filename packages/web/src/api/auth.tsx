import { useQuery, useQueryClient } from '@tanstack/react-query';
import { createContext, type ReactNode, useCallback, useContext, useEffect, useMemo } from 'react';
import { ApiError, api, onUnauthenticated, setCsrfToken } from './http.ts';
import { keys } from './queries.ts';
import type { LoginAnswer, Me, TwoFactorState, User } from './types.ts';

interface AuthValue {
  user: User | null;
  loading: boolean;
  /** set when /auth/me failed for a reason other than "not logged in" */
  error: unknown;
  setupRequired: boolean;
  twoFactor: TwoFactorState;
  /** resolves a ticket when the account has 2FA on (then call loginSecondFactor) */
  login(email: string, password: string): Promise<{ ticket: string } | null>;
  loginSecondFactor(ticket: string, factor: { code: string } | { recoveryCode: string }): Promise<void>;
  /** re-read /auth/me (after 2FA was turned on or off) */
  refresh(): Promise<void>;
  setup(token: string, email: string, password: string): Promise<void>;
  logout(): Promise<void>;
  canWrite: boolean;
}

const AuthContext = createContext<AuthValue | null>(null);

async function fetchMe(): Promise<Me | null> {
  try {
    const me = await api<Me>('/auth/me');
    setCsrfToken(me.csrfToken);
    return me;
  } catch (e) {
    if (e instanceof ApiError && (e.code === 'UNAUTHENTICATED' || e.code === 'AUTH_FAILED')) return null;
    throw e;
  }
}

export function AuthProvider({ children }: { children: ReactNode }) {
  const qc = useQueryClient();
  const setupQ = useQuery({
    queryKey: keys.setup,
    queryFn: () => api<{ required: boolean }>('/setup'),
    retry: 1,
    staleTime: Number.POSITIVE_INFINITY,
  });
  const meQ = useQuery({
    queryKey: keys.me,
    queryFn: fetchMe,
    retry: 1,
    staleTime: Number.POSITIVE_INFINITY,
  });

  useEffect(
    () =>
      onUnauthenticated(() => {
        setCsrfToken(null);
        qc.setQueryData(keys.me, null);
      }),
    [qc],
  );

  const signedIn = useCallback(
    (me: Me) => {
      setCsrfToken(me.csrfToken);
      qc.setQueryData(keys.me, me);
      qc.setQueryData(keys.setup, { required: false });
    },
    [qc],
  );

  const value = useMemo<AuthValue>(() => {
    const user = meQ.data?.user ?? null;
    return {
      user,
      loading: setupQ.isPending || meQ.isPending,
      error: meQ.error ?? setupQ.error,
      setupRequired: setupQ.data?.required ?? false,
      twoFactor: meQ.data?.twoFactor ?? { enabled: false, required: false },
      canWrite: user?.role === 'owner' || user?.role === 'admin',
      async login(email, password) {
        const res = await api<LoginAnswer>('/auth/login', { method: 'POST', body: { email, password } });
        if (res.twoFactorRequired) return { ticket: res.ticket };
        // the login answer has no twoFactor state: read it
        signedIn(res);
        await qc.invalidateQueries({ queryKey: keys.me });
        return null;
      },
      async loginSecondFactor(ticket, factor) {
        signedIn(await api<Me>('/auth/login/2fa', { method: 'POST', body: { ticket, ...factor } }));
        await qc.invalidateQueries({ queryKey: keys.me });
      },
      async refresh() {
        await qc.invalidateQueries({ queryKey: keys.me });
      },
      async setup(token, email, password) {
        signedIn(await api<Me>('/setup', { method: 'POST', body: { token, email, password } }));
      },
      async logout() {
        try {
          await api<void>('/auth/logout', { method: 'POST' });
        } finally {
          setCsrfToken(null);
          // not qc.clear(): mounted observers would keep the removed "me" query and stay signed in
          qc.setQueryData(keys.me, null);
          qc.removeQueries({
            predicate: (q) => q.queryKey[0] !== keys.me[0] && q.queryKey[0] !== keys.setup[0],
          });
        }
      },
    };
  }, [meQ.data, meQ.isPending, meQ.error, setupQ.data, setupQ.isPending, setupQ.error, qc, signedIn]);

  return <AuthContext.Provider value={value}>{children}</AuthContext.Provider>;
}

export function useAuth(): AuthValue {
  const v = useContext(AuthContext);
  if (!v) throw new Error('useAuth outside AuthProvider');
  return v;
}
