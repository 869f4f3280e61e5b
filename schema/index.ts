import type { GraphQLSchema } from 'graphql';
import { builder } from './builder.js';
import './types.js';
import './queries.js';
import './mutations.js';
import './subscriptions.js';
import './volumeTypes.js';
import './imageTypes.js';

export type { Context } from './builder.js';
export { authenticate, bearerToken } from './auth.js';
export { ChangeFeed } from './changeFeed.js';
export { toGraphQLError } from './errors.js';

let schema: GraphQLSchema | undefined;

/** The public GraphQL schema of CONTRACT.md, built once per process. */
export function stratusSchema(): GraphQLSchema {
  schema ??= builder.toSchema();
  return schema;
}
