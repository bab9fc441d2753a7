import { useState } from 'preact/hooks';
import { ApiError, call } from '../api.js';
import { navigate } from '../router.js';
import { logOut, me, say, sessionEnded } from '../state.js';
import { describe } from './item.js';
import { NeedLogin } from './need-login.js';

export function AccountView() {
  const user = me.use();
  const [current, setCurrent] = useState('');
  const [password, setPassword] = useState('');
  const [again, setAgain] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState('');
  if (user === undefined) return <p class="muted panel">Loading…</p>;
  if (!user) return <NeedLogin next="/account" what="see your account" />;

  const change = async (e: Event) => {
    e.preventDefault();
    setError('');
    if (password !== again) return setError('The two new passwords differ.');
    setBusy(true);
    try {
      await call('PUT', '/me/password', { json: { current, password } });
      setCurrent('');
      setPassword('');
      setAgain('');
      say('Password changed. Your other sessions have ended.');
    } catch (err) {
      if (err instanceof ApiError && err.status === 401) sessionEnded();
      setError(describe(err));
    }
    setBusy(false);
  };

  return (
    <section class="panel narrow">
      <h1>{user.username}</h1>
      <p class="muted">{user.role === 'admin' ? 'Admin: may edit and delete any item and manage accounts.' : 'Member: may upload, and edit or delete what they uploaded.'}</p>
      <form class="form" onSubmit={change} aria-labelledby="pw-heading">
        <h2 id="pw-heading">Change your password</h2>
        <label>
          Current password
          <input type="password" autocomplete="current-password" required maxLength={200} value={current} onInput={(e) => setCurrent(e.currentTarget.value)} />
        </label>
        <label>
          New password <span class="hint">(at least 8 characters)</span>
          <input type="password" autocomplete="new-password" required minLength={8} maxLength={200} value={password} onInput={(e) => setPassword(e.currentTarget.value)} />
        </label>
        <label>
          New password again
          <input type="password" autocomplete="new-password" required minLength={8} maxLength={200} value={again} onInput={(e) => setAgain(e.currentTarget.value)} />
        </label>
        {error && (
          <p class="error" role="alert">
            {error}
          </p>
        )}
        <button type="submit" class="button primary" disabled={busy}>
          {busy ? 'Changing…' : 'Change password'}
        </button>
      </form>
      <div class="actions">
        <button
          type="button"
          class="button"
          onClick={async () => {
            try {
              await logOut();
              navigate('/', true);
            } catch (err) {
              say(describe(err));
            }
          }}
        >
          Log out
        </button>
      </div>
    </section>
  );
}
