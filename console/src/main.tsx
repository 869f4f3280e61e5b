import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { ApiError } from './api';
import { ErrorNote } from './components';
import { pagesFor } from './pages';
import { InstancePage } from './pages/instance';
import { href, useRoute } from './router';
import { SessionContext, signIn, signOut, storedToken, type Session } from './session';
import './style.css';

function SignIn({ onSession, initialError }: { onSession: (s: Session) => void; initialError?: ApiError | null }) {
  const [error, setError] = useState<ApiError | null>(initialError ?? null);
  const [busy, setBusy] = useState(false);
  const submit = async (e: Event) => {
    e.preventDefault();
    const token = String(new FormData(e.currentTarget as HTMLFormElement).get('token') ?? '').trim();
    setBusy(true);
    try {
      onSession(await signIn(token));
    } catch (err) {
      setError(err instanceof ApiError ? err : new ApiError(String(err), 'INTERNAL'));
    } finally {
      setBusy(false);
    }
  };
  return (
    <main class="signin">
      <form onSubmit={submit} aria-labelledby="signin-title">
        <h1 id="signin-title">Stratus</h1>
        <p class="muted">Sign in with an API token. It is kept in this browser tab only.</p>
        <label for="token">Token</label>
        <input id="token" name="token" type="password" autocomplete="off" required autofocus aria-describedby={error ? 'signin-error' : undefined} />
        <div id="signin-error">
          <ErrorNote error={error?.code === 'UNAUTHENTICATED' ? 'That token is not valid.' : error} />
        </div>
        <button type="submit" class="primary" disabled={busy}>
          Sign in
        </button>
      </form>
    </main>
  );
}

function Shell({ session, onSignOut }: { session: Session; onSignOut: () => void }) {
  const route = useRoute();
  const available = pagesFor(session);
  const [section = 'instances', id] = route;
  const page = available.find((p) => p.path === section);
  const [menuOpen, setMenuOpen] = useState(false);
  useEffect(() => setMenuOpen(false), [section, id]);
  return (
    <SessionContext.Provider value={session}>
      <a class="skip" href="#main">
        Skip to content
      </a>
      <header class="topbar">
        <a class="brand" href={href('instances')}>
          Stratus
        </a>
        <button type="button" class="nav-toggle" aria-expanded={menuOpen} aria-controls="nav" onClick={() => setMenuOpen(!menuOpen)}>
          Menu
        </button>
        <nav id="nav" aria-label="Main" class={menuOpen ? 'open' : ''}>
          <ul>
            {available.map((p) => (
              <li key={p.path}>
                <a href={href(p.path)} aria-current={p.path === section ? 'page' : undefined}>
                  {p.label}
                </a>
              </li>
            ))}
          </ul>
        </nav>
        <div class="who">
          <span>
            {session.projectName ?? (session.role === 'ADMIN' ? 'all projects' : 'project')} · <span class="role">{session.role.toLowerCase()}</span>
          </span>
          <button type="button" onClick={onSignOut}>
            Sign out
          </button>
        </div>
      </header>
      <main id="main" tabIndex={-1}>
        {section === 'instances' && id ? <InstancePage id={id} /> : page ? <page.component /> : <p>There is no such page for this token.</p>}
      </main>
    </SessionContext.Provider>
  );
}

function App() {
  const [session, setSession] = useState<Session | null>(null);
  const [restoring, setRestoring] = useState(() => storedToken() !== null);
  const [restoreError, setRestoreError] = useState<ApiError | null>(null);
  useEffect(() => {
    const token = storedToken();
    if (!token) return;
    signIn(token)
      .then(setSession, (e: unknown) => {
        signOut();
        setRestoreError(e instanceof ApiError ? e : null);
      })
      .finally(() => setRestoring(false));
  }, []);
  if (restoring) return <p class="muted">Signing in…</p>;
  if (!session) return <SignIn onSession={setSession} initialError={restoreError} />;
  return (
    <Shell
      session={session}
      onSignOut={() => {
        signOut();
        setSession(null);
      }}
    />
  );
}

render(<App />, document.getElementById('app')!);
