import { SpanKind } from '@opentelemetry/api';
import { getOperationAST } from 'graphql';
import type { Plugin } from 'graphql-yoga';
import { contextFromTraceparent, inSpan, tracingEnabled } from '../server/telemetry.js';

/**
 * A span per GraphQL query or mutation, active while its resolvers run, so what they start (a
 * workflow, with Temporal's client interceptor) joins the same trace. A caller's own `traceparent`
 * header makes the request part of the caller's trace.
 */
export function graphqlTracing(): Plugin {
  if (!tracingEnabled()) return {};
  return {
    onExecute({ args, executeFn, setExecuteFn }) {
      const op = getOperationAST(args.document, args.operationName);
      const kind = op?.operation ?? 'query';
      const name = `graphql ${kind}${op?.name ? ` ${op.name.value}` : ''}`;
      const request = (args.contextValue as { request?: Request }).request;
      const parent = contextFromTraceparent(request?.headers.get('traceparent') ?? undefined);
      setExecuteFn((a) =>
        inSpan(
          name,
          { kind: SpanKind.SERVER, attributes: { 'graphql.operation.type': kind, ...(op?.name ? { 'graphql.operation.name': op.name.value } : {}) } },
          async (span) => {
            const result = await executeFn(a);
            const errors = (result as { errors?: readonly unknown[] }).errors;
            if (errors?.length) span.setAttribute('graphql.errors', errors.length);
            return result;
          },
          parent,
        ),
      );
    },
  };
}
