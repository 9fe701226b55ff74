import { useEffect, useRef, useState, type FormEvent } from 'react';
import { AuthError, type Auth, type User } from './auth';

export function SignIn({
  auth,
  notice,
  email: known,
  local,
  onSignedIn,
}: {
  auth: Auth;
  notice?: string;
  /** Who is signing in again (their session ended): only the password is left to type. */
  email?: string;
  local: boolean;
  onSignedIn: (user: User) => void;
}) {
  const [email, setEmail] = useState(known ?? '');
  const [password, setPassword] = useState('');
  const [error, setError] = useState<string>();
  const [busy, setBusy] = useState(false);
  const emailInput = useRef<HTMLInputElement>(null);
  const passwordInput = useRef<HTMLInputElement>(null);
  useEffect(() => (known ? passwordInput : emailInput).current?.focus(), [known]);

  async function submit(event: FormEvent) {
    event.preventDefault();
    setBusy(true);
    setError(undefined);
    try {
      onSignedIn(await auth.signIn(email.trim(), password));
    } catch (err) {
      setError(err instanceof AuthError ? err.message : 'Sign-in failed; try again.');
      setPassword('');
    } finally {
      setBusy(false);
    }
  }

  return (
    <main className="center">
      <form className="card sign-in" onSubmit={submit} aria-labelledby="sign-in-title">
        <h1 id="sign-in-title">
          <span className="logo" aria-hidden="true">▣</span> Gatehouse
        </h1>
        <p className="muted">Sign in to your workspace.</p>
        {notice && <p className="notice" role="status">{notice}</p>}
        <label htmlFor="email">Email</label>
        <input id="email" ref={emailInput} type="email" autoComplete="username" required value={email} onChange={(e) => setEmail(e.target.value)} />
        <label htmlFor="password">Password</label>
        <input id="password" ref={passwordInput} type="password" autoComplete="current-password" required value={password} onChange={(e) => setPassword(e.target.value)} />
        {error && (
          <p className="error" role="alert" id="sign-in-error">
            {error}
          </p>
        )}
        <button type="submit" disabled={busy} aria-describedby={error ? 'sign-in-error' : undefined}>
          {busy ? 'Signing in…' : 'Sign in'}
        </button>
        {local && <p className="muted small">Running locally: sign in with a demo account that <code>npm start</code> printed.</p>}
        <p className="muted small">
          {auth.mode === 'session' ? 'Session mode: your tokens stay on the server.' : 'Token mode: signed in with Amazon Cognito in this tab.'}
        </p>
      </form>
    </main>
  );
}
