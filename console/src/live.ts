import { useEffect, useRef, useState } from 'preact/hooks';
import { ApiError, RESYNC, request, subscribe } from './api';
import { useSession } from './session';

/** A query's result, loaded once and again on `reload()` (which live views call when told of a change). */
export function useQuery<T>(query: string, variables: Record<string, unknown> = {}, deps: unknown[] = []) {
  const { token } = useSession();
  const [data, setData] = useState<T | undefined>(undefined);
  const [error, setError] = useState<ApiError | undefined>(undefined);
  const [generation, setGeneration] = useState(0);
  useResync(() => setGeneration((g) => g + 1));
  useEffect(() => {
    let current = true;
    request<T>(token, query, variables).then(
      (d) => current && (setData(d), setError(undefined)),
      (e: unknown) => current && setError(e instanceof ApiError ? e : new ApiError(String(e), 'INTERNAL')),
    );
    return () => {
      current = false;
    };
  }, [token, generation, ...deps]);
  return { data, error, reload: () => setGeneration((g) => g + 1) };
}

/** Runs `onResync` when the live connection came back after a drop, so a view can read again what it missed. */
function useResync(onResync: () => void): void {
  const handler = useRef(onResync);
  handler.current = onResync;
  useEffect(() => {
    const listener = () => handler.current();
    addEventListener(RESYNC, listener);
    return () => removeEventListener(RESYNC, listener);
  }, []);
}

/** Runs `onData` for each result of a subscription while the component is mounted. */
export function useSubscription<T>(query: string, variables: Record<string, unknown>, onData: (data: T) => void, deps: unknown[] = []): void {
  const { token } = useSession();
  const handler = useRef(onData);
  handler.current = onData;
  useEffect(() => subscribe<T>(token, query, variables, (d) => handler.current(d)), [token, ...deps]);
}

/**
 * A list kept live by a subscription: the subscription starts before the first load, so no change
 * between the two is lost. Rows with a version keep whichever copy has the higher one. Rows without
 * take every live copy (the API reads each after its change, in order) and a loaded copy only where
 * no live one came first; a read after a reconnect replaces them all.
 */
export function useLiveRows<T extends { id: string; version?: number }>(
  load: () => Promise<T[]>,
  subscription: { query: string; variables?: Record<string, unknown>; pick: (data: never) => T | null },
  deps: unknown[] = [],
) {
  const [rows, setRows] = useState<Map<string, T> | undefined>(undefined);
  const [error, setError] = useState<ApiError | undefined>(undefined);
  const merge = (incoming: T[], source: 'live' | 'load' | 'reread' = 'live') =>
    setRows((prev) => {
      const next = new Map(prev ?? []);
      for (const row of incoming) {
        const old = next.get(row.id);
        const newer = row.version === undefined ? source !== 'load' : (old?.version ?? -1) <= row.version;
        if (!old || newer) next.set(row.id, row);
      }
      return next;
    });
  useSubscription<never>(subscription.query, subscription.variables ?? {}, (d) => {
    const row = subscription.pick(d);
    if (row) merge([row]);
  }, deps);
  const [generation, setGeneration] = useState(0);
  useResync(() => setGeneration((g) => g + 1));
  useEffect(() => {
    let current = true;
    load().then(
      (list) => current && merge(list, generation > 0 ? 'reread' : 'load'),
      (e: unknown) => current && setError(e instanceof ApiError ? e : new ApiError(String(e), 'INTERNAL')),
    );
    return () => {
      current = false;
    };
  }, [generation, ...deps]);
  return { rows: rows ? [...rows.values()] : undefined, error, merge };
}

/**
 * A mutation run from a form or a button: its ApiError stays until the next success, so a page shows
 * the API's reason (next to a field when it names one) and the change simply did not happen.
 */
export function useMutation() {
  const { token } = useSession();
  const [error, setError] = useState<ApiError | null>(null);
  const [busy, setBusy] = useState(false);
  const run = async <T = Record<string, unknown>>(query: string, variables: Record<string, unknown> = {}): Promise<T | null> => {
    setBusy(true);
    try {
      const data = await request<T>(token, query, variables);
      setError(null);
      return data;
    } catch (e) {
      setError(e instanceof ApiError ? e : new ApiError(String(e), 'INTERNAL'));
      return null;
    } finally {
      setBusy(false);
    }
  };
  return { run, error, setError, busy };
}
