import { useEffect, useState } from 'preact/hooks';
import { ApiError } from '../api.js';
import { navigate } from '../router.js';
import { logIn, me } from '../state.js';
import { describe } from './item.js';

export function LoginView({ next }: { next: string }) {
  const user = me.use();
  const [username, setUsername] = useState('');
  const [password, setPassword] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState('');

  useEffect(() => {
    if (user && !busy) navigate(next, true);
  }, [user]);

  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError('');
    try {
      await logIn(username.trim(), password);
      navigate(next, true);
    } catch (err) {
      setError(err instanceof ApiError && err.status === 401 ? 'Wrong username or password.' : describe(err));
      setBusy(false);
    }
  };

  return (
    <section class="panel narrow">
      <h1>Log in</h1>
      <p class="muted">Members log in to upload and to edit their files. Anyone on the network may browse and download without an account.</p>
      <form class="form" onSubmit={submit}>
        <label>
          Username
          <input name="username" autocomplete="username" autocapitalize="none" spellcheck={false} required maxLength={100} value={username} onInput={(e) => setUsername(e.currentTarget.value)} />
        </label>
        <label>
          Password
          <input name="password" type="password" autocomplete="current-password" required maxLength={200} value={password} onInput={(e) => setPassword(e.currentTarget.value)} />
        </label>
        {error && (
          <p class="error" role="alert">
            {error}
          </p>
        )}
        <button type="submit" class="button primary" disabled={busy}>
          {busy ? 'Logging in…' : 'Log in'}
        </button>
      </form>
    </section>
  );
}
