import { GraphQLError } from 'graphql';
import { ZodError, type z } from 'zod';
import { StratusError } from '../domain/errors.js';
import { componentLog } from '../server/log.js';

const log = componentLog('api');

/**
 * graphql ships CommonJS and ESM builds and the executor may load the other one than this file, so
 * `instanceof GraphQLError` can be false for a real one: recognise it by its tag instead.
 */
const isGraphQLError = (e: unknown): e is GraphQLError =>
  e instanceof GraphQLError || (e instanceof Error && Object.prototype.toString.call(e) === '[object GraphQLError]');

/**
 * THE error mapper (STYLE.md: one place at the edge). Domain errors keep their contract code, plus
 * `runningOperation` when a resource is busy and zod's `issues` for bad input; GraphQL's own errors
 * (syntax, validation) pass as they are; anything else is INTERNAL, logged here, its message hidden.
 */
export function toGraphQLError(error: unknown): GraphQLError {
  const wrapper = isGraphQLError(error) ? error : undefined;
  // The executor may wrap a resolver's error more than once (locatedError around locatedError).
  let original: unknown = error;
  while (isGraphQLError(original) && original.originalError) original = original.originalError;
  const at = { nodes: wrapper?.nodes, path: wrapper?.path, positions: wrapper?.positions, source: wrapper?.source };
  if (original instanceof StratusError) {
    const { runningOperation, issues: given, path } = original.details as { runningOperation?: unknown; issues?: unknown; path?: unknown };
    // The contract gives every BAD_USER_INPUT a list of issues. A domain rule (a disk that would shrink,
    // an address outside its network) refuses with one message: that is its one issue, at the input
    // field the rule names, if it names one.
    const issues =
      given === undefined && original.code === 'BAD_USER_INPUT'
        ? [{ code: 'custom', path: Array.isArray(path) ? path : [], message: original.message }]
        : given;
    return new GraphQLError(original.message, {
      ...at,
      extensions: {
        code: original.code,
        ...(runningOperation !== undefined ? { runningOperation } : {}),
        ...(issues !== undefined ? { issues } : {}),
      },
    });
  }
  if (original instanceof ZodError) {
    return new GraphQLError('the input is invalid', { ...at, extensions: { code: 'BAD_USER_INPUT', issues: original.issues } });
  }
  // GraphQL's own refusals (a malformed query, an unknown field, a variable of the wrong type).
  if (isGraphQLError(original)) return original;
  log.error({ err: original, path: wrapper?.path }, 'unexpected error in a GraphQL request');
  return new GraphQLError('internal error', { ...at, extensions: { code: 'INTERNAL' } });
}

/**
 * Parses a mutation's `input` with the domain's zod schema before anything else happens, so a bad
 * request writes nothing (DESIGN.md invariant 10). GraphQL hands omitted nullable fields over as
 * absent but explicit ones as null; zod's `optional` means absent, so nulls are dropped first.
 */
export function parseInput<S extends z.ZodType>(schema: S, input: unknown): z.infer<S> {
  const withoutNulls =
    input && typeof input === 'object' ? Object.fromEntries(Object.entries(input).filter(([, v]) => v !== null && v !== undefined)) : input;
  const parsed = schema.safeParse(withoutNulls);
  if (!parsed.success) throw new StratusError('BAD_USER_INPUT', 'the input is invalid', { issues: parsed.error.issues });
  return parsed.data;
}
