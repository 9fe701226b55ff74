import { useCallback, useEffect, useState } from 'react';
import { createAuth, type Auth, type User } from './auth';
import { loadConfig } from './config';
import { SignIn } from './SignIn';
import { onSignOutElsewhere } from './tabs';
import { Workspace } from './Workspace';

type Loaded = { config: Awaited<ReturnType<typeof loadConfig>>; auth: Auth };

export function App() {
  const [loaded, setLoaded] = useState<Loaded>();
  const [user, setUser] = useState<User | null>();
  const [notice, setNotice] = useState<string>();
  const [failure, setFailure] = useState<string>();
  // Who to sign in again after a session ended by itself (never after a sign-out someone asked for).
  const [again, setAgain] = useState<string>();

  useEffect(() => {
    (async () => {
      const config = await loadConfig();
      const auth = await createAuth(config);
      setLoaded({ config, auth });
      setUser(await auth.restore());
    })().catch((err: Error) => setFailure(err.message));
  }, []);

  const signedOut = useCallback((message?: string) => {
    setUser(null);
    setNotice(message);
    setAgain(undefined);
  }, []);

  // The sign-in is gone for good (the server no longer knows it): back to sign-in, saying why. This tab's tokens
  // (token mode) are void, and a server that lost its state may have new settings (locally: a new app client), so
  // the configuration is read again before the user signs in.
  const sessionEnded = useCallback(() => {
    if (user) setAgain(user.email);
    setUser(null);
    setNotice('Your session ended — sign in again.');
    void (async () => {
      await loaded?.auth.signOut(false).catch(() => undefined);
      const config = await loadConfig();
      setLoaded({ config, auth: await createAuth(config) });
    })().catch(() => undefined);
  }, [loaded, user]);

  // Another tab signed out: this one must not keep a socket (unmounting the workspace closes it) or, in token mode,
  // its own tokens.
  useEffect(
    () =>
      onSignOutElsewhere(() => {
        signedOut('You signed out in another tab.');
        void loaded?.auth.signOut(false).catch(() => undefined);
      }),
    [signedOut, loaded],
  );

  if (failure) return <main className="center"><p role="alert">Gatehouse could not start: {failure}</p></main>;
  if (!loaded || user === undefined) return <main className="center" aria-busy="true"><p>Loading…</p></main>;
  if (!user) {
    return (
      <SignIn
        auth={loaded.auth}
        notice={notice}
        email={again}
        local={loaded.config.cognitoEndpoint !== undefined}
        onSignedIn={(u) => {
          setNotice(undefined);
          setUser(u);
        }}
      />
    );
  }
  return <Workspace config={loaded.config} auth={loaded.auth} user={user} onSignedOut={signedOut} onSessionEnded={sessionEnded} />;
}
