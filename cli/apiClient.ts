import type { ApiConfig } from './apiConfig.js';

interface GraphQLErrorBody {
  message: string;
  extensions?: { code?: string; issues?: { path?: unknown[]; message?: string }[]; runningOperation?: { id?: string; kind?: string } };
}
interface GraphQLBody<T> {
  data?: T | null;
  errors?: GraphQLErrorBody[];
}

/** An API refusal, with the contract's code, worded for a person at a terminal. */
export class ApiError extends Error {
  constructor(
    message: string,
    readonly code: string,
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

function explain(config: ApiConfig, e: GraphQLErrorBody): ApiError {
  const code = e.extensions?.code ?? 'INTERNAL';
  switch (code) {
    case 'UNAUTHENTICATED':
      return new ApiError(`the API at ${config.url} refused the token (UNAUTHENTICATED): log in again with \`stratus login\``, code);
    case 'FORBIDDEN':
      return new ApiError(`${e.message} (FORBIDDEN): the token's role may not do this`, code);
    case 'BAD_USER_INPUT': {
      const issues = (e.extensions?.issues ?? []).map((i) => `  ${(i.path ?? []).join('.') || 'input'}: ${i.message ?? ''}`);
      return new ApiError([`${e.message} (BAD_USER_INPUT)`, ...issues].join('\n'), code);
    }
    case 'CONFLICT': {
      const running = e.extensions?.runningOperation;
      const busy = running?.id ? `; operation ${running.id} (${running.kind ?? '?'}) is running on it` : '';
      return new ApiError(`${e.message} (CONFLICT${busy})`, code);
    }
    default:
      return new ApiError(`${e.message} (${code})`, code);
  }
}

function unreachable(config: ApiConfig, e: unknown): ApiError {
  const cause = (e as { cause?: { code?: string; message?: string } }).cause;
  const why = cause?.code ?? cause?.message ?? (e instanceof Error ? e.message : String(e));
  return new ApiError(`cannot reach the Stratus API at ${config.url} (${why}): is it running, and is the URL right?`, 'UNREACHABLE');
}

/** The `stratus` command's one way to the API: POST /graphql, and subscriptions over server-sent events. */
export class ApiClient {
  constructor(readonly config: ApiConfig) {}

  private headers(accept: string) {
    return { 'content-type': 'application/json', accept, authorization: `Bearer ${this.config.token}` };
  }

  async request<T>(query: string, variables: Record<string, unknown> = {}): Promise<T> {
    let res: Response;
    try {
      res = await fetch(this.config.url, { method: 'POST', headers: this.headers('application/graphql-response+json, application/json'), body: JSON.stringify({ query, variables }) });
    } catch (e) {
      throw unreachable(this.config, e);
    }
    const text = await res.text();
    let body: GraphQLBody<T>;
    try {
      body = JSON.parse(text) as GraphQLBody<T>;
    } catch {
      throw new ApiError(`the server at ${this.config.url} answered HTTP ${res.status} with something that is not GraphQL: is this a Stratus API?`, 'INTERNAL');
    }
    const first = body.errors?.[0];
    if (first) throw explain(this.config, first);
    if (!body.data) throw new ApiError(`the API answered HTTP ${res.status} without data`, 'INTERNAL');
    return body.data;
  }

  /**
   * A subscription over server-sent events (graphql-yoga's default transport): calls `onData` for each
   * result until `signal` aborts or the server ends the stream. Resolves once the server has answered
   * the request, so a caller knows the subscription is registered before it looks at the current state.
   */
  async subscribe<T>(query: string, variables: Record<string, unknown>, onData: (data: T) => void, signal: AbortSignal): Promise<{ ended: Promise<void> }> {
    let res: Response;
    try {
      res = await fetch(this.config.url, { method: 'POST', headers: this.headers('text/event-stream'), body: JSON.stringify({ query, variables }), signal });
    } catch (e) {
      throw unreachable(this.config, e);
    }
    if (!res.ok || !res.body) {
      const text = await res.text();
      // A refusal comes as JSON, or as one server-sent event, depending on the server's path to it.
      const json = text.split('\n').find((l) => l.startsWith('data:'))?.slice(5) ?? text;
      let body: GraphQLBody<T> = {};
      try {
        body = JSON.parse(json) as GraphQLBody<T>;
      } catch {
        // not GraphQL: reported by status below
      }
      if (body.errors?.[0]) throw explain(this.config, body.errors[0]);
      throw new ApiError(`the API refused the subscription (HTTP ${res.status}): ${text.slice(0, 200)}`, 'INTERNAL');
    }
    const stream = res.body;
    const ended = (async () => {
      const decoder = new TextDecoder();
      let buffer = '';
      try {
        for await (const chunk of stream as unknown as AsyncIterable<Uint8Array>) {
          buffer += decoder.decode(chunk, { stream: true });
          let end;
          while ((end = buffer.indexOf('\n\n')) >= 0) {
            const message = buffer.slice(0, end);
            buffer = buffer.slice(end + 2);
            const data = message.split('\n').filter((l) => l.startsWith('data:')).map((l) => l.slice(5).trim()).join('');
            if (!data) continue;
            const body = JSON.parse(data) as GraphQLBody<T>;
            if (body.errors?.[0]) throw explain(this.config, body.errors[0]);
            if (body.data) onData(body.data);
          }
        }
      } catch (e) {
        if (signal.aborted) return;
        throw e;
      }
    })();
    return { ended };
  }
}

/** The client for the API that `stratus login` (or STRATUS_API_URL and STRATUS_TOKEN) names. */
export async function connect(): Promise<ApiClient> {
  const { loadApiConfig } = await import('./apiConfig.js');
  return new ApiClient(loadApiConfig());
}
