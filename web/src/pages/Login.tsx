import { type FormEvent, useState } from 'react';
import { ApiError, errorText, login } from '../api';

export function LoginPage() {
  const [token, setToken] = useState('');
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    if (token.trim() === '') return;
    setBusy(true);
    setError(null);
    try {
      await login(token.trim());
      setToken('');
    } catch (err) {
      setError(err instanceof ApiError && err.status === 401 ? 'That token is not valid.' : errorText(err));
    } finally {
      setBusy(false);
    }
  };
  return (
    <main className="login" id="main">
      <form className="card login-card" method="post" onSubmit={submit} data-testid="login-form">
        <h1>schnitzel console</h1>
        <p className="muted">
          Open the one-time login URL that <code>schnitzel serve</code> printed, or paste the API token (the{' '}
          <code>token</code> file in the state directory).
        </p>
        {/* For password managers: the token has no user name. */}
        <input type="text" name="username" autoComplete="username" value="schnitzel" readOnly hidden />
        <label htmlFor="token">API token</label>
        <input
          id="token"
          name="token"
          type="password"
          autoComplete="current-password"
          value={token}
          onChange={(e) => setToken(e.target.value)}
          data-testid="login-token"
          autoFocus
          required
        />
        {error && (
          <p className="error-note" role="alert" data-testid="login-error">
            {error}
          </p>
        )}
        <button type="submit" className="primary" disabled={busy} data-testid="login-submit">
          {busy ? 'Logging in…' : 'Log in'}
        </button>
      </form>
    </main>
  );
}
