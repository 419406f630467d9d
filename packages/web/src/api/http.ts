/**
 * The one way the UI talks REST to the Panel: same-origin fetch with the session cookie, the
 * CSRF token on every state-changing request, and errors turned into `ApiError` with the
 * Panel's `code` (the UI shows codes, never guesses from prose).
 */

export class ApiError extends Error {
  readonly code: string;
  readonly status: number;
  readonly location: string | undefined;
  readonly requestId: string | undefined;
  /** the Panel's structured detail, e.g. per-variable rule errors for VALIDATION_FAILED */
  readonly details: unknown;
  constructor(
    code: string,
    message: string,
    status: number,
    location?: string,
    requestId?: string,
    details?: unknown,
  ) {
    super(message);
    this.name = 'ApiError';
    this.code = code;
    this.status = status;
    this.location = location;
    this.requestId = requestId;
    this.details = details;
  }
}

let csrfToken: string | null = null;
/** Set from login, setup and `GET /auth/me`; cleared on logout. */
export function setCsrfToken(token: string | null): void {
  csrfToken = token;
}

const UNSAFE = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

/** The CSRF header a state-changing request needs (for callers that fetch bodies themselves). */
export function csrfHeaders(method: string): Record<string, string> {
  return UNSAFE.has(method.toUpperCase()) && csrfToken ? { 'x-csrf-token': csrfToken } : {};
}

type Listener = () => void;
const unauthenticatedListeners = new Set<Listener>();
/** Called when any request comes back 401 UNAUTHENTICATED (session expired elsewhere). */
export function onUnauthenticated(fn: Listener): () => void {
  unauthenticatedListeners.add(fn);
  return () => unauthenticatedListeners.delete(fn);
}

export interface RequestOptions {
  method?: string;
  body?: unknown;
  signal?: AbortSignal;
}

/** `path` is relative to `/api`, e.g. `/servers`. */
export async function api<T>(path: string, opts: RequestOptions = {}): Promise<T> {
  const method = (opts.method ?? 'GET').toUpperCase();
  const headers: Record<string, string> = { accept: 'application/json' };
  if (opts.body !== undefined) headers['content-type'] = 'application/json';
  if (UNSAFE.has(method) && csrfToken) headers['x-csrf-token'] = csrfToken;
  let res: Response;
  try {
    res = await fetch(`/api${path}`, {
      method,
      headers,
      credentials: 'same-origin',
      ...(opts.body === undefined ? {} : { body: JSON.stringify(opts.body) }),
      ...(opts.signal ? { signal: opts.signal } : {}),
    });
  } catch (e) {
    if ((e as Error).name === 'AbortError') throw e;
    throw new ApiError('NETWORK_ERROR', 'The Panel could not be reached.', 0);
  }
  if (res.status === 204) return undefined as T;
  const text = await res.text();
  let data: unknown = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = null;
    }
  }
  if (!res.ok) {
    const err = errorFromBody(data, res.status);
    if (err.code === 'UNAUTHENTICATED') for (const fn of unauthenticatedListeners) fn();
    throw err;
  }
  return data as T;
}

export function errorFromBody(data: unknown, status: number): ApiError {
  if (data && typeof data === 'object' && 'code' in data && typeof data.code === 'string') {
    const d = data as {
      code: string;
      message?: unknown;
      location?: unknown;
      requestId?: unknown;
      details?: unknown;
    };
    return new ApiError(
      d.code,
      typeof d.message === 'string' ? d.message : d.code,
      status,
      typeof d.location === 'string' ? d.location : undefined,
      typeof d.requestId === 'string' ? d.requestId : undefined,
      d.details,
    );
  }
  return new ApiError(`HTTP_${status}`, `The Panel answered ${status} without an error body.`, status);
}

export function errorCode(e: unknown): string {
  return e instanceof ApiError ? e.code : 'UNKNOWN_ERROR';
}
export function errorMessage(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
