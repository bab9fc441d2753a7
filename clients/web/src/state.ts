import { useEffect, useState } from 'preact/hooks';
import { ApiError, call, SessionResponse, SessionState, type User } from './api.js';

/** A value that views can follow: `use()` re-renders the component when it changes. */
export class Store<T> {
  private listeners = new Set<(v: T) => void>();
  constructor(private value: T) {}
  get(): T {
    return this.value;
  }
  set(value: T): void {
    this.value = value;
    for (const l of this.listeners) l(value);
  }
  subscribe(l: (v: T) => void): () => void {
    this.listeners.add(l);
    return () => this.listeners.delete(l);
  }
  use(): T {
    const [v, setV] = useState(this.value);
    useEffect(() => {
      setV(this.value);
      return this.subscribe(setV);
    }, []);
    return v;
  }
}

/** Who is signed in: undefined while the app asks, null for a guest. */
export const me = new Store<User | null | undefined>(undefined);

export async function refreshMe(): Promise<void> {
  try {
    me.set((await call('GET', '/auth/session', { schema: SessionState })).user);
  } catch {
    me.set(me.get() ?? null);
  }
}

export async function logIn(username: string, password: string): Promise<User> {
  const session = await call('POST', '/auth/session', { schema: SessionResponse, json: { username, password } });
  me.set(session.user);
  return session.user;
}

export async function logOut(): Promise<void> {
  try {
    await call('POST', '/auth/logout');
  } catch (err) {
    if (!(err instanceof ApiError) || err.status !== 401) throw err;
  }
  me.set(null);
}

/** Called when any request answers 401: the session has ended (a password change elsewhere, expiry). */
export function sessionEnded(): void {
  if (me.get()) me.set(null);
}

/** A short message for everyone (screen readers too), shown at the bottom for a few seconds. */
export const toast = new Store<{ text: string; id: number } | null>(null);
let toastTimer: ReturnType<typeof setTimeout> | undefined;
export function say(text: string): void {
  toast.set({ text, id: Date.now() });
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => toast.set(null), 5000);
}
