/** React bindings for the live relay client (see live-client.ts). */
import type { ClientMessage } from '@cap/protocol/client.ts';
import { createContext, type ReactNode, useContext, useEffect, useRef, useSyncExternalStore } from 'react';
import { LiveClient, type LiveState } from './live-client.ts';

export type { LiveState };

type MessageListener = (msg: ClientMessage) => void;

function defaultUrl(): string {
  const proto = window.location.protocol === 'https:' ? 'wss:' : 'ws:';
  return `${proto}//${window.location.host}/ws/client`;
}

const LiveContext = createContext<LiveClient | null>(null);

export function LiveProvider({ children }: { children: ReactNode }) {
  const ref = useRef<LiveClient | null>(null);
  if (!ref.current) ref.current = new LiveClient(defaultUrl());
  useEffect(() => {
    const client = ref.current!;
    client.start();
    return () => client.stop();
  }, []);
  return <LiveContext.Provider value={ref.current}>{children}</LiveContext.Provider>;
}

export function useLive(): LiveClient {
  const c = useContext(LiveContext);
  if (!c) throw new Error('useLive outside LiveProvider');
  return c;
}

export function useLiveState(): LiveState {
  const c = useLive();
  return useSyncExternalStore(c.onState, c.getState);
}

/** Calls `handler` for every live message; the latest handler is always used. */
export function useLiveMessages(handler: MessageListener): void {
  const c = useLive();
  const ref = useRef(handler);
  ref.current = handler;
  useEffect(() => c.onMessage((m) => ref.current(m)), [c]);
}

/** Keeps a subscription to each of the servers while mounted. */
export function useServerSubscriptions(serverIds: readonly string[]): void {
  const c = useLive();
  const key = [...serverIds].sort().join(',');
  useEffect(() => {
    const offs = key ? key.split(',').map((id) => c.subscribe(id)) : [];
    return () => {
      for (const off of offs) off();
    };
  }, [c, key]);
}
