import { useEffect, useRef, useState } from 'react';
import { ApiError, NetworkError } from './api';

export interface Poll<T> {
  data: T | undefined;
  error: unknown;
  loading: boolean;
  refresh: () => void;
}

/**
 * usePoll fetches now and every interval ms; after a failed connection it
 * backs off (doubling, up to 30 s) and returns to the interval once the
 * server answers. One timer, cleared on unmount or when key changes; a
 * slow answer never overlaps the next request.
 */
export function usePoll<T>(fetcher: (signal: AbortSignal) => Promise<T>, interval: number, key: string, enabled = true): Poll<T> {
  const [data, setData] = useState<T | undefined>(undefined);
  const [error, setError] = useState<unknown>(null);
  const [loading, setLoading] = useState(true);
  const [tick, setTick] = useState(0);
  const fetchRef = useRef(fetcher);
  fetchRef.current = fetcher;

  useEffect(() => {
    setData(undefined);
    setError(null);
    setLoading(true);
  }, [key]);

  useEffect(() => {
    if (!enabled) return;
    let timer: number | undefined;
    let stopped = false;
    let delay = interval;
    const ctrl = new AbortController();
    const run = async () => {
      try {
        const d = await fetchRef.current(ctrl.signal);
        if (stopped) return;
        setData(d);
        setError(null);
        delay = interval;
      } catch (err) {
        if (stopped) return;
        if (err instanceof DOMException && err.name === 'AbortError') return;
        setError(err);
        if (err instanceof NetworkError) delay = Math.min(Math.max(delay * 2, 1000), 30000);
        else if (err instanceof ApiError && err.status === 401) return; // the login page takes over
        else delay = Math.max(interval, 5000);
      } finally {
        if (!stopped) setLoading(false);
      }
      if (!stopped && interval > 0) timer = window.setTimeout(run, delay);
    };
    void run();
    return () => {
      stopped = true;
      ctrl.abort();
      if (timer !== undefined) window.clearTimeout(timer);
    };
  }, [key, interval, enabled, tick]);

  return { data, error, loading, refresh: () => setTick((t) => t + 1) };
}

/** useDebounced returns value once it has not changed for ms. */
export function useDebounced<T>(value: T, ms: number): T {
  const [v, setV] = useState(value);
  useEffect(() => {
    const t = window.setTimeout(() => setV(value), ms);
    return () => window.clearTimeout(t);
  }, [value, ms]);
  return v;
}
