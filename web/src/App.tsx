import { lazy, Suspense, useEffect, useState } from 'react';
import { checkSession, errorText, logout, NetworkError, useAuth, useOnline } from './api';
import { Link, parseRoute, usePath } from './router';
import { LoginPage } from './pages/Login';
import { GraphsPage } from './pages/Graphs';
import { QueuesPage } from './pages/Queues';
import { AuditPage } from './pages/Audit';
import { FleetPage } from './pages/Fleet';

// The canvas (xyflow, dagre) and the code editor (CodeMirror) are loaded
// with the pages that use them.
const GraphPage = lazy(() => import('./pages/Graph'));
const EditorPage = lazy(() => import('./pages/Editor'));

export function App() {
  const state = useAuth();
  const isOnline = useOnline();
  const [probeError, setProbeError] = useState<string | null>(null);
  const [attempt, setAttempt] = useState(0);

  // The session probe decides login vs app; when the server is away it
  // retries with backoff.
  useEffect(() => {
    if (state !== 'unknown') return;
    let timer: number | undefined;
    let stopped = false;
    checkSession()
      .then(() => setProbeError(null))
      .catch((err) => {
        if (stopped) return;
        setProbeError(errorText(err));
        const delay = err instanceof NetworkError ? Math.min(1000 * 2 ** attempt, 30000) : 5000;
        timer = window.setTimeout(() => setAttempt((a) => a + 1), delay);
      });
    return () => {
      stopped = true;
      if (timer !== undefined) window.clearTimeout(timer);
    };
  }, [state, attempt]);

  const banner = !isOnline && (
    <div className="banner" role="status" data-testid="conn-banner">
      The server does not answer. Retrying…
    </div>
  );

  if (state === 'unknown') {
    return (
      <div className="center">
        {banner}
        <p>{probeError ? `Cannot reach the server: ${probeError}. Retrying…` : 'Loading…'}</p>
      </div>
    );
  }
  if (state === 'out') {
    return (
      <>
        {banner}
        <LoginPage />
      </>
    );
  }
  return (
    <>
      <Nav />
      {banner}
      <main id="main" tabIndex={-1}>
        <Suspense fallback={<p className="muted">Loading…</p>}>
          <Pages />
        </Suspense>
      </main>
    </>
  );
}

function Nav() {
  const route = parseRoute(usePath());
  const item = (to: string, label: string, active: boolean) => (
    <li>
      <Link to={to} aria-current={active ? 'page' : undefined} className={active ? 'active' : undefined}>
        {label}
      </Link>
    </li>
  );
  return (
    <header className="topbar">
      <a className="skip" href="#main">
        Skip to content
      </a>
      <span className="brand">schnitzel</span>
      <nav aria-label="Main">
        <ul>
          {item('/', 'Graphs', route.page === 'graphs' || route.page === 'graph')}
          {item('/new', 'Editor', route.page === 'new' || route.page === 'edit')}
          {item('/queues', 'Queues', route.page === 'queues')}
          {item('/audit', 'Audit', route.page === 'audit')}
          {item('/fleet', 'Fleet', route.page === 'fleet')}
        </ul>
      </nav>
      <button type="button" className="logout" data-testid="logout" onClick={() => void logout()}>
        Log out
      </button>
    </header>
  );
}

function Pages() {
  const path = usePath();
  const route = parseRoute(path);
  useEffect(() => {
    const titles: Record<string, string> = { graphs: 'Graphs', new: 'New graph', queues: 'Queues', audit: 'Audit', fleet: 'Fleet' };
    const t = route.page === 'graph' || route.page === 'edit' ? route.name : (titles[route.page] ?? 'Not found');
    document.title = `${t} · schnitzel`;
  }, [path]); // eslint-disable-line react-hooks/exhaustive-deps
  switch (route.page) {
    case 'graphs':
      return <GraphsPage />;
    case 'graph':
      return <GraphPage key={route.name} name={route.name} />;
    case 'edit':
      return <EditorPage key={'edit:' + route.name} name={route.name} />;
    case 'new':
      return <EditorPage key="new" name={null} />;
    case 'queues':
      return <QueuesPage />;
    case 'audit':
      return <AuditPage />;
    case 'fleet':
      return <FleetPage />;
    default:
      return (
        <section>
          <h1>Not found</h1>
          <p>
            <Link to="/">Back to the graphs</Link>
          </p>
        </section>
      );
  }
}
