import { createClient, type Client } from 'graphql-ws';

/** One zod issue as the API sends it in `extensions.issues`. */
export interface Issue {
  path: (string | number)[];
  message: string;
}

/** A GraphQL error with the contract's code; `issues` for BAD_USER_INPUT. */
export class ApiError extends Error {
  constructor(
    message: string,
    readonly code: string,
    readonly issues: Issue[] = [],
  ) {
    super(message);
  }

  /** The message of the first issue about `field` (the input's own field name), if any. */
  issueFor(field: string): string | undefined {
    return this.issues.find((i) => i.path[0] === field || i.path[1] === field)?.message;
  }
}

interface GraphQLResult<T> {
  data?: T | null;
  errors?: { message: string; extensions?: { code?: string; issues?: Issue[] } }[];
}

const toError = (errors: NonNullable<GraphQLResult<unknown>['errors']>): ApiError => {
  const [first] = errors;
  return new ApiError(first?.message ?? 'request failed', first?.extensions?.code ?? 'INTERNAL', first?.extensions?.issues ?? []);
};

/** Queries and mutations over POST /graphql with the session's bearer token. */
export async function request<T>(token: string, query: string, variables: Record<string, unknown> = {}): Promise<T> {
  const res = await fetch('/graphql', {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json', authorization: `Bearer ${token}` },
    body: JSON.stringify({ query, variables }),
  });
  const body = (await res.json()) as GraphQLResult<T>;
  if (body.errors?.length) throw toError(body.errors);
  return body.data as T;
}

let socket: { token: string; client: Client } | undefined;

/** Fired on window when the WebSocket came back after a drop. */
export const RESYNC = 'stratus:resync';

/** One WebSocket per signed-in token, shared by every live view; it reconnects by itself. */
function clientFor(token: string): Client {
  if (socket?.token === token) return socket.client;
  void socket?.client.dispose();
  const url = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/graphql`;
  const client = createClient({
    url,
    connectionParams: { authorization: `Bearer ${token}` },
    retryAttempts: Infinity,
    // A browser reports a refused connection as an error event, which graphql-ws would take as fatal
    // and end every subscription; a console retries whatever went wrong with the socket.
    shouldRetry: () => true,
    // A screen someone is looking at should come back soon after the API does: back off to 5 s at most.
    retryWait: (retries) => new Promise((resolve) => setTimeout(resolve, Math.min(500 * 2 ** retries, 5000) + Math.random() * 500)),
    lazy: true,
  });
  // Changes made while the socket was down are not replayed: every live view reads again instead. Any
  // connection after the first is such a return (graphql-ws's wasRetry misses one after a clean close).
  let connectedBefore = false;
  client.on('connected', () => {
    if (connectedBefore) dispatchEvent(new Event(RESYNC));
    connectedBefore = true;
  });
  socket = { token, client };
  return client;
}

export function closeSocket(): void {
  void socket?.client.dispose();
  socket = undefined;
}

/** A subscription over graphql-ws; returns its unsubscribe. */
export function subscribe<T>(token: string, query: string, variables: Record<string, unknown>, onData: (data: T) => void, onError?: (e: ApiError) => void): () => void {
  return clientFor(token).subscribe<T>(
    { query, variables },
    {
      next: (r) => {
        if (r.errors?.length) onError?.(toError(r.errors as NonNullable<GraphQLResult<T>['errors']>));
        else if (r.data) onData(r.data as T);
      },
      error: (e) => onError?.(new ApiError(e instanceof Error ? e.message : 'subscription closed', 'INTERNAL')),
      complete: () => {},
    },
  );
}
