/* eslint-disable @typescript-eslint/no-explicit-any -- a test reads each response by the shape of its own query */
import { createClient } from 'graphql-ws';
import WebSocket from 'ws';

export interface GraphQLResponse<T = Record<string, unknown>> {
  data?: T | null;
  errors?: { message: string; path?: string[]; extensions?: { code?: string; issues?: unknown[]; runningOperation?: unknown } }[];
}

/** POST /graphql with an optional bearer token, as any client would. */
export async function gql<T = Record<string, any>>(url: string, token: string | undefined, query: string, variables: Record<string, unknown> = {}): Promise<GraphQLResponse<T>> {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: JSON.stringify({ query, variables }),
  });
  return (await res.json()) as GraphQLResponse<T>;
}

export interface Collected<T> {
  items: GraphQLResponse<T>[];
  stop(): void;
}

/** A subscription over server-sent events (graphql-yoga's default transport), collecting every result. */
export function subscribeSse<T = Record<string, any>>(url: string, token: string, query: string, variables: Record<string, unknown> = {}): Collected<T> {
  const items: GraphQLResponse<T>[] = [];
  const abort = new AbortController();
  void (async () => {
    const res = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'text/event-stream', authorization: `Bearer ${token}` },
      body: JSON.stringify({ query, variables }),
      signal: abort.signal,
    });
    const decoder = new TextDecoder();
    let buffer = '';
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
      buffer += decoder.decode(chunk, { stream: true });
      let end;
      while ((end = buffer.indexOf('\n\n')) >= 0) {
        const message = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const data = message.split('\n').filter((l) => l.startsWith('data:')).map((l) => l.slice(5).trim()).join('');
        if (data) items.push(JSON.parse(data) as GraphQLResponse<T>);
      }
    }
  })().catch(() => {});
  return { items, stop: () => abort.abort() };
}

/** A subscription over WebSocket (graphql-ws), the token in connectionParams. */
export function subscribeWs<T = Record<string, any>>(url: string, token: string, query: string, variables: Record<string, unknown> = {}): Collected<T> {
  const items: GraphQLResponse<T>[] = [];
  const client = createClient({ url: url.replace(/^http/, 'ws'), webSocketImpl: WebSocket, connectionParams: { authorization: `Bearer ${token}` }, lazy: false });
  const iterator = client.iterate<T>({ query, variables });
  void (async () => {
    for await (const result of iterator) items.push(result as GraphQLResponse<T>);
  })().catch((e: unknown) => items.push({ errors: [{ message: String(e) }] }));
  return {
    items,
    stop: () => {
      void iterator.return?.();
      void client.dispose();
    },
  };
}
