/**
 * One server's operations as the live socket reports them (`operation` messages on /ws/client),
 * for every place that follows them (the Backups tab, the file manager's archive operations, the
 * server page's recent operations).
 */
import type { ClientMessage } from '@cap/protocol/client.ts';
import { useState } from 'react';
import { useLiveMessages } from './live.tsx';

export type OperationMessage = Extract<ClientMessage, { type: 'operation' }>;

/** What the live socket said of one operation so far. */
export interface OperationProgress {
  kind: string;
  stage: string;
  /** the last message it had (a stage without one keeps the one before) */
  message?: string | undefined;
  /** undefined while it runs */
  success?: boolean | undefined;
  errorCode?: string | undefined;
}

/**
 * The server's operations by id, folded from the live messages (of `kinds` only, when given);
 * `onMessage` gets each message of those as it comes, after it was folded in.
 */
export function useOperationProgress(
  serverId: string,
  opts: { kinds?: readonly string[]; onMessage?: (m: OperationMessage) => void } = {},
): Readonly<Record<string, OperationProgress>> {
  const [ops, setOps] = useState<Record<string, OperationProgress>>({});
  useLiveMessages((m) => {
    if (m.type !== 'operation' || m.serverId !== serverId) return;
    if (opts.kinds && !opts.kinds.includes(m.kind)) return;
    setOps((prev) => ({
      ...prev,
      [m.operationId]: {
        kind: m.kind,
        stage: m.stage,
        message: m.message ?? prev[m.operationId]?.message,
        success: m.success,
        errorCode: m.errorCode,
      },
    }));
    opts.onMessage?.(m);
  });
  return ops;
}
