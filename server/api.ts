import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Kind, type DocumentNode, type ExecutionArgs, type ExecutionResult, GraphQLError } from 'graphql';
import { createYoga, type Plugin, type YogaInitialContext } from 'graphql-yoga';
import { useServer } from 'graphql-ws/use/ws';
import { WebSocketServer } from 'ws';
import { migrateProjections } from '../projections/index.js';
import { authenticate, bearerToken, ChangeFeed, stratusSchema, toGraphQLError, type Context } from '../schema/index.js';
import { imageFilePath, serveImageFile } from './imageFiles.js';
import { consoleSite } from './console.js';
import { graphqlTracing } from '../schema/tracing.js';
import { componentLog } from './log.js';
import { prometheusEndpoint } from './prometheus.js';
import type { Runtime } from './runtime.js';

const log = componentLog('api');

const unauthenticated = () =>
  new GraphQLError('a valid bearer token is required (Authorization: Bearer <token>)', { extensions: { code: 'UNAUTHENTICATED' } });

/** Introspection alone (GraphiQL's docs) needs no token; everything else does. */
const onlyIntrospection = (document: DocumentNode): boolean =>
  document.definitions.every(
    (d) =>
      d.kind !== Kind.OPERATION_DEFINITION ||
      d.selectionSet.selections.every((s) => s.kind === Kind.FIELD && s.name.value.startsWith('__')),
  );

/** No token or a bad one: UNAUTHENTICATED for the whole request, over HTTP, SSE and WebSocket alike. */
const requireCaller: Plugin<Context> = {
  onExecute({ args, setResultAndStopExecution }) {
    const ctx = args.contextValue as Context;
    if (!ctx.caller && !onlyIntrospection(args.document)) setResultAndStopExecution({ errors: [unauthenticated()] });
  },
  onSubscribe({ args, setResultAndStopExecution }) {
    const ctx = args.contextValue as Context;
    if (!ctx.caller) setResultAndStopExecution({ errors: [unauthenticated()] });
  },
};

type WsInitial = { connectionParams?: Record<string, unknown>; req?: IncomingMessage };

/**
 * The GraphQL API: queries and mutations over HTTP (GraphiQL in a browser at /graphql), subscriptions
 * over server-sent events on the same endpoint and over WebSocket (graphql-ws) on the same path, and
 * `GET /healthz`. Listens on `port` (0: any free port).
 */
export async function startApi(rt: Runtime, options: { port: number; host?: string }): Promise<{ url: string; close(): Promise<void> }> {
  await migrateProjections(rt.db);
  const changes = await ChangeFeed.start(rt.db);
  const webConsole = await consoleSite();

  const yoga = createYoga<{ req?: IncomingMessage; res?: ServerResponse } & WsInitial, Context>({
    schema: stratusSchema(),
    graphqlEndpoint: '/graphql',
    graphiql: { title: 'Stratus', subscriptionsProtocol: 'WS' },
    landingPage: false,
    plugins: [requireCaller, graphqlTracing()],
    maskedErrors: { maskError: (error) => toGraphQLError(error) },
    logging: { debug: () => {}, info: () => {}, warn: (...a) => log.warn({ yoga: a }, 'yoga'), // Yoga reports every refused request here; unexpected ones are logged once, by the error mapper.
      error: (...a) => log.debug({ yoga: a }, 'yoga') },
    context: async (initial: YogaInitialContext & WsInitial): Promise<Context> => {
      const fromParams = initial.connectionParams?.['Authorization'] ?? initial.connectionParams?.['authorization'];
      const header =
        initial.request?.headers.get('authorization') ?? (typeof fromParams === 'string' ? fromParams : undefined) ?? initial.req?.headers.authorization;
      return { rt, caller: await authenticate(rt, bearerToken(header)), changes };
    },
  });

  const metrics = prometheusEndpoint(rt);
  const server = createServer((req, res) => {
    if (req.method === 'GET' && (req.url === '/metrics' || req.url?.startsWith('/metrics?'))) {
      void metrics.handle(req, res);
      return;
    }
    if (req.url === '/healthz' || req.url?.startsWith('/healthz?')) {
      void health(rt).then(({ ok, body }) => {
        res.writeHead(ok ? 200 : 503, { 'content-type': 'application/json' });
        res.end(JSON.stringify(body));
      });
      return;
    }
    const imageId = imageFilePath(req.url);
    if (imageId) return void serveImageFile(rt, imageId, req, res);
    if (webConsole(req, res)) return;
    void yoga.handle(req, res);
  });

  const wsServer = new WebSocketServer({ server, path: yoga.graphqlEndpoint });
  const ws = useServer(
    {
      execute: (args: ExecutionArgs) => (args.rootValue as Enveloped).execute(args),
      subscribe: (args: ExecutionArgs) => (args.rootValue as Enveloped).subscribe(args),
      onSubscribe: async (ctx, _id, payload) => {
        const enveloped = yoga.getEnveloped({ ...ctx, req: ctx.extra.request, socket: ctx.extra.socket, params: payload });
        const args: ExecutionArgs = {
          schema: enveloped.schema,
          operationName: payload.operationName ?? null,
          document: enveloped.parse(payload.query),
          variableValues: payload.variables ?? null,
          contextValue: await enveloped.contextFactory(),
          rootValue: { execute: enveloped.execute, subscribe: enveloped.subscribe },
        };
        const errors = enveloped.validate(args.schema, args.document);
        return errors.length > 0 ? errors : args;
      },
    },
    wsServer,
  );

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host ?? '127.0.0.1', () => resolve());
  });
  const address = server.address() as AddressInfo;
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  const url = `http://${host}:${address.port}/graphql`;
  log.info({ url }, 'GraphQL API listening');

  let closing: Promise<void> | undefined;
  return {
    url,
    close: () =>
      (closing ??= (async () => {
        await ws.dispose();
        wsServer.close();
        server.closeAllConnections();
        await new Promise<void>((resolve) => server.close(() => resolve()));
        await changes.close();
        await metrics.shutdown();
      })()),
  };
}

/** What graphql-ws expects back from execute/subscribe: the enveloped functions return exactly this. */
type OperationResult = Promise<AsyncGenerator<ExecutionResult> | AsyncIterable<ExecutionResult> | ExecutionResult> | AsyncGenerator<ExecutionResult> | AsyncIterable<ExecutionResult> | ExecutionResult;

interface Enveloped {
  execute: (args: ExecutionArgs) => OperationResult;
  subscribe: (args: ExecutionArgs) => OperationResult;
}

/** 200 once the database and Temporal both answer; 503 with what failed otherwise. */
async function health(rt: Runtime): Promise<{ ok: boolean; body: Record<string, string> }> {
  const within = <T>(p: Promise<T>, ms: number) =>
    Promise.race([p, new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms).unref())]);
  const [database, temporal] = await Promise.allSettled([
    within(rt.db.query('SELECT 1'), 3000),
    within(rt.temporal.workflowService.getSystemInfo({}), 3000),
  ]);
  const status = (r: PromiseSettledResult<unknown>) => (r.status === 'fulfilled' ? 'ok' : String((r.reason as Error)?.message ?? r.reason));
  const body = { database: status(database), temporal: status(temporal) };
  const ok = database.status === 'fulfilled' && temporal.status === 'fulfilled';
  return { ok, body: { status: ok ? 'ok' : 'unavailable', ...body } };
}
