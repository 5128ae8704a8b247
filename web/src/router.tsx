// History routing: the Go side serves index.html for every non-API path,
// so /graphs/NAME can be reloaded and bookmarked.
import { type AnchorHTMLAttributes, type MouseEvent, useSyncExternalStore } from 'react';

const listeners = new Set<() => void>();
function notify() {
  listeners.forEach((l) => l());
}
if (typeof window !== 'undefined') window.addEventListener('popstate', notify);

function subscribe(l: () => void) {
  listeners.add(l);
  return () => {
    listeners.delete(l);
  };
}

export function usePath(): string {
  return useSyncExternalStore(subscribe, () => window.location.pathname + window.location.search);
}

export function navigate(to: string, replace = false) {
  if (to === window.location.pathname + window.location.search) return;
  if (replace) window.history.replaceState(null, '', to);
  else window.history.pushState(null, '', to);
  window.scrollTo(0, 0);
  notify();
}

export function Link({ to, onClick, ...rest }: AnchorHTMLAttributes<HTMLAnchorElement> & { to: string }) {
  return (
    <a
      href={to}
      onClick={(e: MouseEvent<HTMLAnchorElement>) => {
        onClick?.(e);
        if (e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
        e.preventDefault();
        navigate(to);
      }}
      {...rest}
    />
  );
}

export type Route =
  | { page: 'graphs' }
  | { page: 'graph'; name: string }
  | { page: 'edit'; name: string }
  | { page: 'new' }
  | { page: 'queues' }
  | { page: 'audit' }
  | { page: 'fleet' }
  | { page: 'notfound' };

export function parseRoute(path: string): Route {
  const p = path.split('?')[0].replace(/\/+$/, '') || '/';
  if (p === '/' || p === '/graphs') return { page: 'graphs' };
  if (p === '/new') return { page: 'new' };
  if (p === '/queues') return { page: 'queues' };
  if (p === '/audit') return { page: 'audit' };
  if (p === '/fleet') return { page: 'fleet' };
  let m = /^\/graphs\/([^/]+)\/edit$/.exec(p);
  if (m) return { page: 'edit', name: decodeURIComponent(m[1]) };
  m = /^\/graphs\/([^/]+)$/.exec(p);
  if (m) return { page: 'graph', name: decodeURIComponent(m[1]) };
  return { page: 'notfound' };
}
