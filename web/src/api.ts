// The console's only way to the server: same-origin fetch with the session
// cookie (never a token in a URL). A 401 anywhere sends the app to the
// login page (one place: auth state); a failed connection raises the
// banner (conn state) until a request succeeds again.
import { useSyncExternalStore } from 'react';

export class ApiError extends Error {
  status: number;
  kind: string;
  details: unknown;
  constructor(status: number, kind: string, message: string, details?: unknown) {
    super(message);
    this.status = status;
    this.kind = kind;
    this.details = details;
  }
}

/** NetworkError: the server did not answer (gone, restarting, proxy error). */
export class NetworkError extends Error {}

type Listener = () => void;

function store<T>(initial: T) {
  let value = initial;
  const listeners = new Set<Listener>();
  return {
    get: () => value,
    set(v: T) {
      if (Object.is(v, value)) return;
      value = v;
      listeners.forEach((l) => l());
    },
    subscribe(l: Listener) {
      listeners.add(l);
      return () => listeners.delete(l);
    },
  };
}

export type AuthState = 'unknown' | 'in' | 'out';
export const auth = store<AuthState>('unknown');
export const online = store<boolean>(true);

export function useAuth(): AuthState {
  return useSyncExternalStore(auth.subscribe, auth.get);
}
export function useOnline(): boolean {
  return useSyncExternalStore(online.subscribe, online.get);
}

export interface RequestOpts {
  body?: unknown; // JSON-encoded unless a string with contentType
  contentType?: string;
  signal?: AbortSignal;
  /** no401: a 401 is the caller's business (login form, session probe). */
  no401?: boolean;
}

export async function request<T>(method: string, path: string, opts: RequestOpts = {}): Promise<T> {
  const headers: Record<string, string> = { Accept: 'application/json' };
  let body: BodyInit | undefined;
  if (opts.body !== undefined) {
    if (typeof opts.body === 'string' && opts.contentType) {
      body = opts.body;
      headers['Content-Type'] = opts.contentType;
    } else {
      body = JSON.stringify(opts.body);
      headers['Content-Type'] = 'application/json';
    }
  }
  let res: Response;
  try {
    res = await fetch(path, { method, headers, body, credentials: 'same-origin', signal: opts.signal, cache: 'no-store' });
  } catch (err) {
    if (err instanceof DOMException && err.name === 'AbortError') throw err;
    online.set(false);
    throw new NetworkError('the server does not answer');
  }
  const text = await res.text();
  let data: unknown = null;
  if (text !== '') {
    try {
      data = JSON.parse(text);
    } catch {
      data = text;
    }
  }
  // A proxy in front (vite dev, a reverse proxy) answers 5xx without our
  // error envelope when serve is gone: that is a lost connection.
  if (res.status >= 500 && !(data && typeof data === 'object' && 'error' in data)) {
    online.set(false);
    throw new NetworkError(`the server does not answer (HTTP ${res.status})`);
  }
  online.set(true);
  if (!res.ok) {
    const env = (data && typeof data === 'object' ? (data as Record<string, unknown>).error : undefined) as
      | { kind?: string; message?: string; details?: unknown }
      | string
      | undefined;
    let kind = 'http_' + res.status;
    let message = `HTTP ${res.status}`;
    let details: unknown;
    if (env && typeof env === 'object') {
      kind = env.kind ?? kind;
      message = env.message ?? message;
      details = env.details;
    } else if (typeof env === 'string') {
      message = env;
    } else if (typeof data === 'string' && data.trim() !== '') {
      message = data.trim().slice(0, 300);
    }
    if (res.status === 401 && !opts.no401) auth.set('out');
    throw new ApiError(res.status, kind, message, details);
  }
  return data as T;
}

export const get = <T>(path: string, signal?: AbortSignal) => request<T>('GET', path, { signal });
export const post = <T>(path: string, body?: unknown) => request<T>('POST', path, { body: body ?? {} });

export function errorText(err: unknown): string {
  if (err instanceof ApiError) return `${err.message} (${err.kind})`;
  if (err instanceof Error) return err.message;
  return String(err);
}

export const enc = encodeURIComponent;

/** checkSession asks the server whether the cookie is a live session. */
export async function checkSession(): Promise<void> {
  try {
    await request('GET', '/api/v1/session', { no401: true });
    auth.set('in');
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) {
      auth.set('out');
      return;
    }
    if (err instanceof ApiError && err.status === 404) {
      // A server without the session route: any authenticated GET tells.
      try {
        await request('GET', '/api/v1/plugins', { no401: true });
        auth.set('in');
      } catch (err2) {
        if (err2 instanceof ApiError && err2.status === 401) auth.set('out');
        else throw err2;
      }
      return;
    }
    throw err;
  }
}

export async function login(token: string): Promise<void> {
  await request('POST', '/api/v1/session', { body: { token }, no401: true });
  auth.set('in');
}

export async function logout(): Promise<void> {
  try {
    await request('POST', '/logout', { body: {}, no401: true });
  } finally {
    auth.set('out');
  }
}
