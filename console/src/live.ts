import { useEffect, useRef, useState } from 'preact/hooks';
import { ApiError, request, subscribe } from './api';
import { useSession } from './session';

/** A query's result, loaded once and again on `reload()` (which live views call when told of a change). */
export function useQuery<T>(query: string, variables: Record<string, unknown> = {}, deps: unknown[] = []) {
  const { token } = useSession();
  const [data, setData] = useState<T | undefined>(undefined);
  const [error, setError] = useState<ApiError | undefined>(undefined);
  const [generation, setGeneration] = useState(0);
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

/** Runs `onData` for each result of a subscription while the component is mounted. */
export function useSubscription<T>(query: string, variables: Record<string, unknown>, onData: (data: T) => void, deps: unknown[] = []): void {
  const { token } = useSession();
  const handler = useRef(onData);
  handler.current = onData;
  useEffect(() => subscribe<T>(token, query, variables, (d) => handler.current(d)), [token, ...deps]);
}

/**
 * A list kept live by a subscription: the subscription starts before the first load, so no change
 * between the two is lost, and each row keeps whichever copy has the higher version.
 */
export function useLiveRows<T extends { id: string; version?: number }>(
  load: () => Promise<T[]>,
  subscription: { query: string; variables?: Record<string, unknown>; pick: (data: never) => T | null },
  deps: unknown[] = [],
) {
  const [rows, setRows] = useState<Map<string, T> | undefined>(undefined);
  const [error, setError] = useState<ApiError | undefined>(undefined);
  const merge = (incoming: T[]) =>
    setRows((prev) => {
      const next = new Map(prev ?? []);
      for (const row of incoming) {
        const old = next.get(row.id);
        if (!old || (old.version ?? 0) <= (row.version ?? 0)) next.set(row.id, row);
      }
      return next;
    });
  useSubscription<never>(subscription.query, subscription.variables ?? {}, (d) => {
    const row = subscription.pick(d);
    if (row) merge([row]);
  }, deps);
  useEffect(() => {
    let current = true;
    setRows(undefined);
    load().then(
      (list) => current && merge(list),
      (e: unknown) => current && setError(e instanceof ApiError ? e : new ApiError(String(e), 'INTERNAL')),
    );
    return () => {
      current = false;
    };
  }, deps);
  return { rows: rows ? [...rows.values()] : undefined, error, merge };
}
