import { useEffect, useState } from 'preact/hooks';
import { z } from 'zod';
import { ApiError, call, User } from '../api.js';
import { day } from '../format.js';
import { me, say, sessionEnded } from '../state.js';
import { describe } from './item.js';
import { NeedLogin } from './need-login.js';
import { LinkedSitesAdmin, SiteAddress } from './sites.js';

const UserList = z.object({ users: z.array(User) });

const fail = (setError: (s: string) => void) => (err: unknown) => {
  if (err instanceof ApiError && err.status === 401) sessionEnded();
  setError(describe(err));
};

/** Admins: this site's address (with its QR code); accounts (create, change a role, reset a password, delete); linked sites. */
export function AdminView() {
  const user = me.use();
  const [users, setUsers] = useState<User[] | null>(null);
  const [error, setError] = useState('');
  const load = () =>
    call('GET', '/users', { schema: UserList })
      .then((l) => setUsers(l.users.sort((a, b) => a.username.localeCompare(b.username))))
      .catch(fail(setError));
  useEffect(() => {
    if (user?.role === 'admin') void load();
  }, [user?.username, user?.role]);

  if (user === undefined) return <p class="muted panel">Loading…</p>;
  if (!user) return <NeedLogin next="/admin" what="manage accounts" />;
  if (user.role !== 'admin') {
    return (
      <section class="panel narrow">
        <h1>Users</h1>
        <p>Only admins manage accounts.</p>
      </section>
    );
  }
  return (
    <>
      <section class="panel">
        <h1>Users</h1>
        <CreateUser onCreated={load} />
        {error && (
          <p class="error" role="alert">
            {error}
          </p>
        )}
        <h2>Accounts</h2>
        {!users ? (
          <p class="muted">Loading…</p>
        ) : (
          <ul class="user-list">
            {users.map((u) => (
              <UserRow u={u} self={u.username === user.username} onChange={load} key={u.username} />
            ))}
          </ul>
        )}
      </section>
      <SiteAddress />
      <LinkedSitesAdmin />
    </>
  );
}

function CreateUser({ onCreated }: { onCreated: () => void }) {
  const [username, setUsername] = useState('');
  const [password, setPassword] = useState('');
  const [role, setRole] = useState('member');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState('');
  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError('');
    try {
      const created = await call('POST', '/users', { schema: User, json: { username, password, role } });
      say(`Account “${created.username}” created.`);
      setUsername('');
      setPassword('');
      setRole('member');
      onCreated();
    } catch (err) {
      fail(setError)(err);
    }
    setBusy(false);
  };
  return (
    <form class="form inline-form" onSubmit={submit} aria-labelledby="new-user-heading">
      <h2 id="new-user-heading">New account</h2>
      <label>
        Username
        <input autocomplete="off" autocapitalize="none" spellcheck={false} required minLength={2} maxLength={32} pattern="[A-Za-z0-9][A-Za-z0-9._\-]{1,31}" value={username} onInput={(e) => setUsername(e.currentTarget.value)} />
      </label>
      <label>
        Password <span class="hint">(at least 8 characters)</span>
        <input type="password" autocomplete="new-password" required minLength={8} maxLength={200} value={password} onInput={(e) => setPassword(e.currentTarget.value)} />
      </label>
      <label>
        Role
        <select value={role} onChange={(e) => setRole(e.currentTarget.value)}>
          <option value="member">Member</option>
          <option value="admin">Admin</option>
        </select>
      </label>
      {error && (
        <p class="error" role="alert">
          {error}
        </p>
      )}
      <button type="submit" class="button primary" disabled={busy}>
        Create account
      </button>
    </form>
  );
}

function UserRow({ u, self, onChange }: { u: User; self: boolean; onChange: () => void }) {
  const [mode, setMode] = useState<'' | 'reset' | 'delete'>('');
  const [password, setPassword] = useState('');
  const [error, setError] = useState('');
  const id = `user-${u.username.replace(/[^a-z0-9]/g, '-')}`;
  const patch = async (change: { role?: string; password?: string }, done: string) => {
    setError('');
    try {
      await call('PATCH', `/users/${encodeURIComponent(u.username)}`, { schema: User, json: change });
      say(done);
      setMode('');
      setPassword('');
      onChange();
    } catch (err) {
      fail(setError)(err);
    }
  };
  const remove = async () => {
    setError('');
    try {
      await call('DELETE', `/users/${encodeURIComponent(u.username)}`);
      say(`Account “${u.username}” deleted. What it uploaded stays in the library.`);
      onChange();
    } catch (err) {
      fail(setError)(err);
    }
  };
  return (
    <li class="user" aria-labelledby={id}>
      <div class="user-main">
        <span class="user-name" id={id}>
          {u.username}
          {self ? ' (you)' : ''}
        </span>
        <span class="muted">since {day(u.createdAt)}</span>
        <label class="role">
          <span class="visually-hidden">Role of {u.username}</span>
          <select value={u.role} onChange={(e) => patch({ role: e.currentTarget.value }, `${u.username} is now ${e.currentTarget.value === 'admin' ? 'an admin' : 'a member'}.`)}>
            <option value="member">Member</option>
            <option value="admin">Admin</option>
          </select>
        </label>
        <button type="button" class="button small" aria-expanded={mode === 'reset'} onClick={() => setMode(mode === 'reset' ? '' : 'reset')}>
          Reset password<span class="visually-hidden"> of {u.username}</span>
        </button>
        <button type="button" class="button small danger" aria-expanded={mode === 'delete'} onClick={() => setMode(mode === 'delete' ? '' : 'delete')}>
          Delete<span class="visually-hidden"> {u.username}</span>
        </button>
      </div>
      {mode === 'reset' && (
        <form
          class="form inline-form"
          onSubmit={(e) => {
            e.preventDefault();
            void patch({ password }, `New password set for ${u.username}; their sessions have ended.`);
          }}
        >
          <label>
            New password for {u.username}
            <input type="password" autocomplete="new-password" required minLength={8} maxLength={200} value={password} onInput={(e) => setPassword(e.currentTarget.value)} />
          </label>
          <button type="submit" class="button primary">
            Set password
          </button>
        </form>
      )}
      {mode === 'delete' && (
        <div class="confirm" role="group" aria-label={`Confirm deleting ${u.username}`}>
          <p>Delete the account “{u.username}”? Its sessions end at once; what it uploaded stays.</p>
          <button type="button" class="button danger" onClick={remove}>
            Delete {u.username}
          </button>
          <button type="button" class="button" onClick={() => setMode('')}>
            Cancel
          </button>
        </div>
      )}
      {error && (
        <p class="error" role="alert">
          {error}
        </p>
      )}
    </li>
  );
}
