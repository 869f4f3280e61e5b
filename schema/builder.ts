import SchemaBuilder from '@pothos/core';
import RelayPlugin from '@pothos/plugin-relay';
import ScopeAuthPlugin from '@pothos/plugin-scope-auth';
import { GraphQLScalarType, Kind, type ValueNode } from 'graphql';
import { StratusError } from '../domain/errors.js';
import type { Caller } from '../domain/identity.js';
import type { Runtime } from '../server/runtime.js';
import type { ChangeFeed } from './changeFeed.js';

/** What every resolver gets: the runtime, the caller its bearer token proved (null: none or bad), the change feed. */
export interface Context {
  rt: Runtime;
  caller: Caller | null;
  changes: ChangeFeed;
}

/**
 * Roles as scopes: `reader` is any valid token, `writer` may change its project's resources (ADMIN,
 * MEMBER), `admin` reaches hosts, the catalog, projects, tokens and operations of every project.
 */
export const builder = new SchemaBuilder<{
  Context: Context;
  AuthScopes: { reader: boolean; writer: boolean; admin: boolean };
  Scalars: {
    DateTime: { Input: string; Output: string | Date };
    JSON: { Input: unknown; Output: unknown };
  };
  DefaultFieldNullability: false;
}>({
  plugins: [ScopeAuthPlugin, RelayPlugin],
  defaultFieldNullability: false,
  scopeAuth: {
    authScopes: (ctx) => ({
      reader: ctx.caller !== null,
      writer: ctx.caller?.role === 'ADMIN' || ctx.caller?.role === 'MEMBER',
      admin: ctx.caller?.role === 'ADMIN',
    }),
    unauthorizedError: (_parent, ctx) =>
      ctx.caller === null
        ? new StratusError('UNAUTHENTICATED', 'a valid bearer token is required')
        : new StratusError('FORBIDDEN', `a ${ctx.caller.role} token may not do this`),
  },
  relay: { clientMutationId: 'omit', cursorType: 'String', nodeQueryOptions: false, nodesQueryOptions: false },
});

const toIso = (value: unknown): string => {
  const date = value instanceof Date ? value : new Date(String(value));
  if (Number.isNaN(date.getTime())) throw new TypeError(`not a date-time: ${String(value)}`);
  return date.toISOString();
};

builder.addScalarType(
  'DateTime',
  new GraphQLScalarType({
    name: 'DateTime',
    description: 'An ISO-8601 date-time in UTC',
    serialize: toIso,
    parseValue: toIso,
    parseLiteral: (ast) => (ast.kind === Kind.STRING ? toIso(ast.value) : null),
  }),
);

const literal = (ast: ValueNode): unknown => {
  switch (ast.kind) {
    case Kind.STRING:
    case Kind.BOOLEAN:
      return ast.value;
    case Kind.INT:
    case Kind.FLOAT:
      return Number(ast.value);
    case Kind.OBJECT:
      return Object.fromEntries(ast.fields.map((f) => [f.name.value, literal(f.value)]));
    case Kind.LIST:
      return ast.values.map(literal);
    default:
      return null;
  }
};

builder.addScalarType(
  'JSON',
  new GraphQLScalarType({ name: 'JSON', description: 'Any JSON value', serialize: (v) => v, parseValue: (v) => v, parseLiteral: literal }),
);

/** The caller of a resolver that a scope already required; never null there. */
export function callerOf(ctx: Context): Caller {
  if (!ctx.caller) throw new StratusError('UNAUTHENTICATED', 'a valid bearer token is required');
  return ctx.caller;
}
