import { type QueryClient, useQuery, useQueryClient } from '@tanstack/react-query';
import { createContext, type ReactNode, useCallback, useContext, useEffect, useMemo } from 'react';
import { ApiError, api, onUnauthenticated, setCsrfToken } from './http.ts';
import { keys } from './queries.ts';
import type { ApiResponse, LoginAnswer, Me, TwoFactorState } from './types.ts';

/** what login, the 2FA step and setup answer: a session without the 2FA state (`/auth/me` has it) */
/** a login's answer: the user without the username (/auth/me, read again right after, has it) */
type SignedIn = { user: Omit<Me['user'], 'username'>; csrfToken: string };
type SecondFactorAnswer = ApiResponse<'/api/auth/login/2fa', 'post'>;
type SetupAnswer = ApiResponse<'/api/setup', 'post'>;

interface AuthValue {
  user: Me['user'] | null;
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
  /** a Panel-wide role (spectator and up): sees nodes and every server; a `user` only its own */
  seesPanel: boolean;
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

const fetchSetup = () => api<ApiResponse<'/api/setup', 'get'>>('/setup');

/** The login check asked for at boot, before React's first render (AuthProvider reads the same queries). */
export function prefetchSession(qc: QueryClient): void {
  void qc.prefetchQuery({
    queryKey: keys.me,
    queryFn: fetchMe,
    retry: 1,
    staleTime: Number.POSITIVE_INFINITY,
  });
  void qc.prefetchQuery({
    queryKey: keys.setup,
    queryFn: fetchSetup,
    retry: 1,
    staleTime: Number.POSITIVE_INFINITY,
  });
}

export function AuthProvider({ children }: { children: ReactNode }) {
  const qc = useQueryClient();
  const setupQ = useQuery({
    queryKey: keys.setup,
    queryFn: fetchSetup,
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
    async (session: SignedIn) => {
      setCsrfToken(session.csrfToken);
      // the answer carries no 2FA state: keep what is known until /auth/me is read again
      qc.setQueryData<Me | null>(keys.me, (old) => ({
        user: { ...session.user, username: old?.user.username ?? '' },
        csrfToken: session.csrfToken,
        twoFactor: old?.twoFactor ?? { enabled: false, required: false },
      }));
      qc.setQueryData(keys.setup, { required: false });
      await qc.invalidateQueries({ queryKey: keys.me });
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
      seesPanel: user !== null && user.role !== 'user',
      async login(email, password) {
        const res = await api<LoginAnswer>('/auth/login', { method: 'POST', body: { email, password } });
        if (res.twoFactorRequired) return { ticket: res.ticket };
        await signedIn(res);
        return null;
      },
      async loginSecondFactor(ticket, factor) {
        await signedIn(
          await api<SecondFactorAnswer>('/auth/login/2fa', { method: 'POST', body: { ticket, ...factor } }),
        );
      },
      async refresh() {
        await qc.invalidateQueries({ queryKey: keys.me });
      },
      async setup(token, email, password) {
        await signedIn(
          await api<SetupAnswer>('/setup', { method: 'POST', body: { token, email, password } }),
        );
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
